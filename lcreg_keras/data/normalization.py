"""Per-channel normalisation constants, in the [0, 1] pixel scale: `(x / 255 - mean) / std`."""

# torchvision's ImageNet statistics (MiSLAS uses them for ImageNet-LT and Places-LT).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# MiSLAS's (and the decoupling code's) iNaturalist 2018 statistics.
INATURALIST_MEAN = (0.466, 0.471, 0.380)
INATURALIST_STD = (0.195, 0.194, 0.192)
