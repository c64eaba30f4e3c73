"""somanet.vision.models: torchvision's builder keywords over the somanet model zoo."""
import numpy as np
import pytest

import somanet
from somanet import models as zoo
from somanet.vision import models


# VGG's 4096-wide classifier takes seconds to initialise; a narrow one checks the same keywords.
SMALL_VGG = dict(hidden_features=32, pool_size=1)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "vgg11", "vgg11_bn", "vgg16_bn", "lenet5"])
def test_builders_take_weights_none_and_num_classes(name):
    extra = SMALL_VGG if name.startswith("vgg") else {}
    model = getattr(models, name)(weights=None, num_classes=7, **extra)
    reference = ({"lenet5": zoo.LeNet5}.get(name) or getattr(zoo, name))(num_classes=7, **extra)
    assert type(model) is type(reference)
    assert list(model.state_dict()) == list(reference.state_dict())
    last = [m for m in model.modules() if isinstance(m, somanet.nn.Linear)][-1]
    assert last.out_features == 7


def test_weights_none_is_a_fresh_random_initialisation():
    a, b = models.resnet18(weights=None), models.resnet18(weights=None)
    assert not np.array_equal(a.conv1.weight.array, b.conv1.weight.array)
    assert a.fc.out_features == 1000


@pytest.mark.parametrize("name,count", [("resnet18", 11_689_512), ("resnet50", 25_557_032)])
def test_parameter_counts_are_torchvisions(name, count):
    model = getattr(models, name)(weights=None)
    assert sum(p.numel() for p in model.parameters()) == count  # the figures torchvision documents


def test_a_state_dict_saved_by_torch_loads_as_the_error_says(tmp_path):
    torch = pytest.importorskip("torch")
    source = models.resnet18(weights=None, num_classes=3)
    path = tmp_path / "resnet18.pth"
    torch.save({k: torch.from_numpy(v.array.copy()) for k, v in source.state_dict().items()}, path)
    model = models.resnet18(weights=None, num_classes=3)
    model.load_state_dict(somanet.load(str(path)))
    x = somanet.randn(1, 3, 32, 32)
    np.testing.assert_array_equal(model.eval()(x).array, source.eval()(x).array)


def test_forward_shape():
    model = models.resnet18(weights=None, num_classes=5).eval()
    assert model(somanet.randn(2, 3, 64, 64)).shape == (2, 5)


def test_legacy_pretrained_flag():
    assert models.vgg11(pretrained=False, num_classes=3, **SMALL_VGG).classifier[-1].out_features == 3
    with pytest.raises(RuntimeError, match="vgg11: weights=VGG11_Weights.IMAGENET1K_V1"):
        models.vgg11(pretrained=True)
    with pytest.raises(ValueError, match="not both"):
        models.vgg11(weights="DEFAULT", pretrained=True)


@pytest.mark.parametrize("weights", ["DEFAULT", "IMAGENET1K_V1", models.ResNet18_Weights.IMAGENET1K_V1,
                                     models.ResNet18_Weights.DEFAULT])
def test_any_weights_give_a_clear_error(weights):
    with pytest.raises(RuntimeError) as info:
        models.resnet18(weights=weights)
    message = str(info.value)
    assert "ResNet18_Weights.IMAGENET1K_V1" in message
    assert "ships no pretrained weights" in message
    assert "somanet.load" in message and "load_state_dict" in message


def test_unknown_weight_name():
    with pytest.raises(ValueError, match="IMAGENET1K_V2"):
        models.resnet50(weights="IMAGENET9K")
    assert models.ResNet50_Weights.DEFAULT is models.ResNet50_Weights.IMAGENET1K_V2
    assert repr(models.ResNet50_Weights.DEFAULT) == "ResNet50_Weights.IMAGENET1K_V2"


def test_registry_helpers():
    assert {"resnet18", "resnet50", "vgg16", "vgg19_bn", "lenet5"} <= set(models.list_models())
    assert models.get_model("ResNet18", num_classes=4).fc.out_features == 4
    assert models.get_model_weights("resnet18") is models.ResNet18_Weights
    assert models.get_model_weights(models.vgg13_bn) is models.VGG13_BN_Weights
    assert models.get_weight("VGG16_Weights.IMAGENET1K_V1") is models.VGG16_Weights.IMAGENET1K_V1
    with pytest.raises(ValueError, match="unknown model"):
        models.get_model("mobilenet_v2")


def test_classes_are_the_zoos():
    assert models.ResNet is zoo.ResNet and models.VGG is zoo.VGG and models.BasicBlock is zoo.BasicBlock
