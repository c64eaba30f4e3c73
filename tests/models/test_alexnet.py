"""AlexNet against torchvision's layout, written out in plain PyTorch, from copied weights: the state-dict
names, the forward pass and the gradients."""
import numpy as np
import pytest

import somanet
from somanet.models import AlexNet, alexnet

torch = pytest.importorskip("torch")
tnn = torch.nn


class TorchAlexNet(tnn.Module):
    """torchvision's AlexNet, with the classifier width as a parameter."""

    def __init__(self, num_classes=1000, dropout=0.5, hidden=4096):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), tnn.ReLU(inplace=True),
            tnn.MaxPool2d(kernel_size=3, stride=2),
            tnn.Conv2d(64, 192, kernel_size=5, padding=2), tnn.ReLU(inplace=True),
            tnn.MaxPool2d(kernel_size=3, stride=2),
            tnn.Conv2d(192, 384, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
            tnn.Conv2d(384, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
            tnn.Conv2d(256, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
            tnn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
        self.classifier = tnn.Sequential(
            tnn.Dropout(p=dropout), tnn.Linear(256 * 6 * 6, hidden), tnn.ReLU(inplace=True),
            tnn.Dropout(p=dropout), tnn.Linear(hidden, hidden), tnn.ReLU(inplace=True),
            tnn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_default_layout_is_torchvisions():
    import inspect

    # The defaults are torchvision's; the layout is checked on a narrow classifier (the full one holds 58M
    # weights), with the width as a variable.
    defaults = {k: p.default for k, p in inspect.signature(AlexNet).parameters.items()}
    assert (defaults["num_classes"], defaults["hidden_features"], defaults["pool_size"]) == (1000, 4096, 6)
    h = 48
    model = alexnet(hidden_features=h)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
        "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
        "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
        "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
        "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
        "classifier.1.weight": (h, 9216), "classifier.1.bias": (h,),
        "classifier.4.weight": (h, h), "classifier.4.bias": (h,),
        "classifier.6.weight": (1000, h), "classifier.6.bias": (1000,),
    }
    assert isinstance(model.avgpool, somanet.nn.AdaptiveAvgPool2d)
    assert [type(m).__name__ for m in model.classifier] == ["Dropout", "Linear", "ReLU", "Dropout", "Linear",
                                                            "ReLU", "Linear"]


@pytest.mark.parametrize("size", [67, 96])
def test_forward_and_gradients_match_torch(size):
    torch.manual_seed(0)
    ref = TorchAlexNet(num_classes=7, hidden=64).eval()
    model = AlexNet(num_classes=7, hidden_features=64).eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(size).standard_normal((2, 3, size, size)).astype(np.float32)
    xs = somanet.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out, exp = model(xs), ref(xt)
    np.testing.assert_allclose(out.array, exp.detach().numpy(), rtol=1e-4, atol=1e-5)
    w = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    (out * somanet.tensor(w)).sum().backward()
    (exp * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(xs.grad.array, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    theirs = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.array, theirs[name].grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_small_input_is_rejected():
    with pytest.raises(ValueError, match="63"):
        AlexNet(num_classes=3, hidden_features=8)(somanet.randn(1, 3, 32, 32))


def test_torchvision_builder_path():
    from somanet.vision import models as tv_models

    model = tv_models.alexnet(weights=None, num_classes=5, dropout=0.3)
    assert isinstance(model, AlexNet) and "alexnet" in tv_models.list_models()
    assert model.classifier[0].p == 0.3 and model.classifier[6].out_features == 5
    assert tv_models.get_model_weights("alexnet").DEFAULT.name == "IMAGENET1K_V1"
    with pytest.raises(RuntimeError, match="alexnet: weights=AlexNet_Weights.IMAGENET1K_V1 cannot be loaded"):
        tv_models.alexnet(weights="DEFAULT")
