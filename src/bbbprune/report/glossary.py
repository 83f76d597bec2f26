"""What every table column means (written under each table)."""

from __future__ import annotations

COLUMN_DEFINITIONS = {
    "error": "test error in %, 100 · (1 − accuracy), on the 10,000 test images",
    "val_error": "validation error in %, the same on the validation split (the last 10k training "
    "images), which is what a choice among runs may look at",
    "compression": "|W| / |W ≠ 0| of the masked network: prunable weights over the weights no "
    "mask sets to 0 (counts masks only; see compression_deployed)",
    "removed_deployed": "share of the prunable weights (conv + linear; biases and variational "
    "parameters are not deployed) that the deployed network no longer has: masked weights and "
    "every weight of a unit removed as dead (no non-zero incoming or outgoing weight), "
    "1 − deployed / prunable (bbbprune.deploy.counting, the rule for every method)",
    "compression_deployed": "prunable weights over the non-zero weights of the deployed "
    "network (dead units removed)",
    "speedup_theoretical": "multiply-adds of the dense network over those of the deployed one "
    "(non-zero weights × output positions, one input image)",
    "weights_deployed": "non-zero conv + linear weights of the deployed network",
    "macs_deployed": "multiply-adds of the deployed network: its non-zero weights, each times "
    "the output positions it is applied at",
    "per_layer_sparsity": "share of each layer's weights set to exactly 0 (%), input layer first",
    "achieved_sparsity": "share of all prunable weights a mask sets to exactly 0 (weights of "
    "units removed as dead are not counted unless masked; see removed_deployed)",
    "final_train_accuracy": "accuracy on the training set during the last epoch",
    "final_val_accuracy": "validation accuracy after the last epoch (the last 10k training images)",
    "kept_widths": "the network left once dead inputs/neurons are removed (structured.shrink): "
    "inputs read, then the width of every layer",
    "accuracy": "test accuracy (fraction correct) on the 10,000 test images",
    "nll": "mean negative log-likelihood of the test labels",
    "channel_sparsity": "share of conv filters (output channels) the rebuilt network no longer "
    "computes (bbbprune.deploy.complexity.count_filters, dense vs structured.shrink)",
    "weights_dense": "conv + linear weights of the unpruned architecture",
    "macs_dense": "multiply-accumulates of the unpruned architecture's conv and linear layers for "
    "one input image",
    "filters_pruned": "conv filters (output channels) the rebuilt network computes",
    "weights_pruned": "conv + linear weights of the physically smaller rebuilt network "
    "(biases, batch norm and folded constants not counted)",
    "macs_pruned": "multiply-accumulates of the rebuilt network's conv and linear layers for one "
    "input image (bbbprune.deploy.complexity.count_macs)",
    "macs_ratio": "MACs of the dense network over MACs of the rebuilt one",
    "speedup_b1": "median CPU forward time of the dense network over the rebuilt one, batch 1 "
    "(both timed in turns in one process, after training)",
    "speedup_b256": "the same at batch 256",
    "rebuild_max_abs_diff": "largest |logit difference| between the masked network and its "
    "rebuild on up to 512 test images",
    "ece": "expected calibration error, 15 equal-width confidence bins (Guo et al. 2017, Eq. 3; "
    "bbbprune.metrics.expected_calibration_error)",
    "brier": "Brier score (1/n) Σ_i Σ_k (p_ik − 1[y_i = k])², from 0 (perfect) to 2",
    "ood_auroc": "AUROC of predictive entropy separating the out-of-distribution test images "
    "(positives) from the in-distribution ones (negatives); 0.5 = chance",
    "entropy_in": "mean predictive entropy (nats) of the in-distribution test images",
    "entropy_ood": "mean predictive entropy (nats) of the out-of-distribution test images",
    "export_size_percent": "bytes of the `bbbprune export` file (layout auto) over the bytes of "
    "the dense float32 export of the same network, in %",
    "latency_ratio_b1": "median CPU time of one forward pass of the export over the dense "
    "float32 network's, batch 1 (below 1: the export is faster)",
    "latency_ratio_b256": "the same at batch 256",
    "seeds": "number of seeds (records) averaged in the row",
    "extra_wall_s": "wall time (s) a run spent beyond training the network it started from "
    "(train.init_from: fine-tuning epochs or a Laplace fit); 0 for a network trained from scratch",
    "shrunk_params": "parameters of bbbprune.shrink(model): the pruned network with dead units "
    "and channels physically removed (outputs equal to the masked network's)",
    "shrunk_bytes": "bytes of that network's parameters and buffers, stored densely in float32",
    "shrunk_latency_b1_ms": "median CPU forward time of that network at batch 1 (ms)",
}
