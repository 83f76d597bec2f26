"""Architectures (MLP, LeNet-300-100, LeNet-5-Caffe, CIFAR ResNets) built from a method's layer
factory, torchvision models, and ``convert`` of any nn.Module."""
