"""Networks: architectures, torchvision models and ``convert`` of any nn.Module."""
