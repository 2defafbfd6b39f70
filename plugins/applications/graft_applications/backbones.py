"""The ``keras.applications`` backbones ``keras_app`` offers, and what each needs (no TensorFlow here).

Every row was checked by building the model without its top in Keras 2.15 and Keras 3
(``benchmarks/applications_all.py`` builds them all and diffs their layer names):
the smallest input Keras accepts (``min_size``, from ``imagenet_utils.obtain_input_shape``
in each module, and no smaller input builds), the preprocessing mode of the module's
``preprocess_input``, the ImageNet no-top file ``keras.utils.get_file`` caches, and the
layer names that differ between Keras 2 and Keras 3.
"""

from __future__ import annotations

import attrs

from graft_applications.offline import KerasFile

TF_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"


@attrs.frozen
class Backbone:
    """One ``keras.applications`` model as ``keras_app`` builds it (``include_top=False``, pooled)."""

    name: str  # the constructor in keras.applications, and the value of params.backbone
    module: str  # keras.applications.<module> has its preprocess_input
    preprocess: str  # caffe | tf | torch | built-in (graft_applications.building.preprocess)
    min_size: int  # height and width at least this
    features: int  # the pooled feature size
    params: int  # weights without the top
    imagenet: KerasFile | None  # the no-top ImageNet file; None when it depends on the input (MobileNet)
    batch_norm: bool = True  # has BatchNormalization layers (bn_momentum applies)
    keras2_names: tuple[tuple[str, str], ...] = ()  # (Keras 3 name, Keras 2.15 name) of layers named differently
    keras2_note: str = ""  # any other difference of the layers under Keras 2.15

    @property
    def rgb_only(self) -> bool:
        """The preprocessing subtracts a mean per RGB channel, so the input needs exactly 3 channels."""
        return self.preprocess in ("caffe", "torch")

    def imagenet_file(self, shape: tuple[int, ...]) -> KerasFile:
        """The no-top ImageNet weights file Keras wants for this input ``shape`` (height, width, channels)."""
        if self.imagenet is not None:
            return self.imagenet
        # MobileNet (alpha 1.0): a file per input size 128, 160, 192 or 224; other inputs get the 224 one
        rows = shape[0] if shape[0] == shape[1] and shape[0] in (128, 160, 192, 224) else 224
        name = f"mobilenet_1_0_{rows}_tf_no_top.h5"
        return KerasFile(name, f"{TF_APPS}mobilenet/{name}")

    def keras_call(self) -> str:
        return f"keras.applications.{self.name}(include_top=False)"


def _tf_file(folder: str, name: str, file_hash: str) -> KerasFile:
    return KerasFile(name, f"{TF_APPS}{folder}{name}", file_hash)


def _tf_kernels(folder: str, stem: str, file_hash: str) -> KerasFile:
    """The files named ``<stem>_weights_tf_dim_ordering_tf_kernels_notop.h5``."""
    return _tf_file(folder, f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5", file_hash)


def _efficientnet(variant: str, features: int, params: int, file_hash: str) -> Backbone:
    name = f"efficientnet{variant}_notop.h5"
    return Backbone(
        f"EfficientNet{variant.upper()}", "efficientnet", "built-in", 32, features, params,
        KerasFile(name, f"https://storage.googleapis.com/keras-applications/{name}", file_hash),
    )


CONVNEXT_TINY_SHA256 = "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"
NASNET_MOBILE_MD5 = "1ed92395b5b598bdda52abe5c0dbfd63"
DENSENET_KERAS2 = (("conv1_conv", "conv1/conv"), ("conv1_bn", "conv1/bn"), ("conv1_relu", "conv1/relu"))

BACKBONES: dict[str, Backbone] = {
    backbone.name: backbone
    for backbone in (
        Backbone(
            "VGG16", "vgg16", "caffe", 32, 512, 14_714_688,
            _tf_kernels("vgg16/", "vgg16", "6d6bbae143d832006294945121d1f1fc"),
            batch_norm=False,
        ),
        Backbone(
            "VGG19", "vgg19", "caffe", 32, 512, 20_024_384,
            _tf_kernels("vgg19/", "vgg19", "253f8cb515780f3b799900260a226db6"),
            batch_norm=False,
        ),
        Backbone(
            "ResNet50", "resnet", "caffe", 32, 2048, 23_587_712,
            _tf_kernels("resnet/", "resnet50", "4d473c1dd8becc155b73f8504c6f6626"),
        ),
        Backbone(
            "ResNet50V2", "resnet_v2", "tf", 32, 2048, 23_564_800,
            _tf_kernels("resnet/", "resnet50v2", "fac2f116257151a9d068a22e544a4917"),
        ),
        Backbone(
            "Xception", "xception", "tf", 71, 2048, 20_861_480,
            _tf_kernels("xception/", "xception", "b0042744bf5b25fce3cb969f33bebb97"),
        ),
        Backbone(
            "InceptionV3", "inception_v3", "tf", 75, 2048, 21_802_784,
            _tf_kernels("inception_v3/", "inception_v3", "bcbd6486424b2319ff4ef7d526e38f63"),
        ),
        Backbone(
            "DenseNet121", "densenet", "torch", 32, 1024, 7_037_504,
            _tf_kernels("densenet/", "densenet121", "30ee3e1110167f948a6b9946edeeb738"),
            keras2_names=DENSENET_KERAS2,
        ),
        _efficientnet("b0", 1280, 4_049_571, "50bc09e76180e00e4465e1a485ddc09d"),
        _efficientnet("b1", 1280, 6_575_239, "74c4e6b3e1f6a1eea24c589628592432"),
        _efficientnet("b2", 1408, 7_768_569, "111f8e2ac8aa800a7a99e3239f7bfb39"),
        _efficientnet("b3", 1536, 10_783_535, "af6d107764bb5b1abb91932881670226"),
        Backbone(
            "EfficientNetV2B0", "efficientnet_v2", "built-in", 32, 1280, 5_919_312,
            _tf_file("efficientnet_v2/", "efficientnetv2-b0_notop.h5", "893217f2bb855e2983157299931e43ff"),
        ),
        Backbone(
            "ConvNeXtTiny", "convnext", "built-in", 32, 768, 27_820_128,
            _tf_file("convnext/", "convnext_tiny_notop.h5", CONVNEXT_TINY_SHA256),
            batch_norm=False,
            keras2_note="Keras 2.15 adds 18 layers without weights for the residual sums "
            "(tf.__operators__.add, tf.__operators__.add_1, ...), Keras 3 has no such layers; and a model.keras "
            "saved under Keras 2.15 does not load back there (Keras 2.15 cannot read its LayerScale layers): "
            "start a stage from it with init: {stage: ...}, not graft.load_stage",
        ),
        Backbone(
            "NASNetMobile", "nasnet", "tf", 32, 1056, 4_269_716,
            # cached under another name than its URL's
            KerasFile("nasnet_mobile_no_top.h5", f"{TF_APPS}nasnet/NASNet-mobile-no-top.h5", NASNET_MOBILE_MD5),
        ),
        Backbone("MobileNet", "mobilenet", "tf", 32, 1024, 3_228_864, None),
    )
}
NAMES = tuple(BACKBONES)
# keras.applications models that another plugin offers
ELSEWHERE = {
    "MobileNetV2": "plugin: mobilenet with variant: v2",
    "MobileNetV3Small": "plugin: mobilenet with variant: v3_small",
    "MobileNetV3Large": "plugin: mobilenet with variant: v3_large",
}


def keras2_differences(backbone: Backbone) -> str:
    """How Keras 2.15 names ``backbone``'s layers differently from Keras 3, in words; empty if it does not."""
    parts = []
    if backbone.keras2_names:
        pairs = ", ".join(f"{keras3} is {keras2}" for keras3, keras2 in backbone.keras2_names)
        parts.append(
            f"{backbone.name} names layers differently under Keras 2.15 and Keras 3 ({pairs} under Keras 2.15)"
        )
    if backbone.keras2_note:
        parts.append(f"{backbone.name}: {backbone.keras2_note}")
    return "; ".join(parts)
