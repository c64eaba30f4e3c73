"""``somanet explain`` on runs made by ``somanet train``, and the heatmap plotting helpers."""
import numpy as np
import pytest

from somanet.cli import main
from somanet.interpret import Saliency, heatmap_array, plot_image_heatmap, plot_token_heatmap

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """A transfer-digits run (the MNIST-pretrained SmallCNN), trained for two steps."""
    pytest.importorskip("safetensors")
    pytest.importorskip("sklearn")
    root = tmp_path_factory.mktemp("explain")
    run = root / "cnn"
    assert main(["train", "transfer-digits", "--epochs", "1", "--max-steps", "2", "--no-plots", "--out", str(run)]) == 0
    from sklearn.datasets import load_digits
    from somanet.models.small_cnn import digits_to_mnist
    digits = load_digits()
    np.save(root / "two.npy", digits_to_mnist(digits.images[:2]))
    return run, root


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "integrated-gradients", "gradcam", "gradcam++"])
def test_explain_writes_a_heatmap_per_sample(cnn_run, method, capsys):
    run, root = cnn_run
    out = root / f"{method}.png"
    assert main(["explain", str(run), str(root / "two.npy"), "--method", method, "--target", "3", "--out", str(out),
                 "--steps", "8", "--samples", "3"]) == 0
    printed = capsys.readouterr().out
    for i in range(2):
        path = root / f"{method}-{i:03d}.png"
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000
        assert f"sample {i}: predicted" in printed and f"Heatmap: {path}" in printed
    assert "explained class 3" in printed
    if method.startswith("gradcam"):
        assert "at layer block3" in printed  # the last block with a spatial map
    if method == "integrated-gradients":
        assert "completeness error" in printed


def test_explain_reads_an_image_like_predict(cnn_run, tmp_path, capsys, monkeypatch):
    pil = pytest.importorskip("PIL.Image")
    run, _ = cnn_run
    img = np.full((40, 40), 255, np.uint8)
    img[8:32, 18:22] = 0  # a dark "1" on white paper
    pil.fromarray(img).save(tmp_path / "one.png")
    monkeypatch.chdir(tmp_path)
    assert main(["explain", str(run), "one.png", "--method", "gradcam", "--layer", "block2"]) == 0
    assert (tmp_path / "one-gradcam.png").read_bytes()[:8] == PNG
    assert "at layer block2" in capsys.readouterr().out


def test_explain_errors(cnn_run, tmp_path, capsys):
    run, root = cnn_run
    two = str(root / "two.npy")
    cases = [
        (["--target", "10"], "--target 10 is out of range: this model has 10 classes"),
        (["--method", "gradcam", "--layer", "nope"], "--layer 'nope' is not a module of this run's model (SmallCNN)"),
        (["--method", "gradcam", "--layer", "fc"], "gradcam at layer 'fc': GradCAM: target_layer Linear gives"),
        (["--out", str(tmp_path / "heat.jpg")], "give a file name ending in .png"),
        (["--out", str(tmp_path / "missing" / "heat.png")], "does not exist"),
    ]
    for extra, message in cases:
        assert main(["explain", str(run), two] + extra) == 2
        assert message in capsys.readouterr().err
    many = tmp_path / "many.npy"
    np.save(many, np.zeros((101, 1, 28, 28), np.float32))
    assert main(["explain", str(run), str(many)]) == 2
    assert "holds 101 samples; explain writes one heatmap per sample and takes at most 100" in capsys.readouterr().err
    many.unlink()
    assert main(["explain", str(run), str(root / "nothing.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["explain", str(tmp_path), two]) == 2
    assert "config.json is missing" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_gradcam_on_a_model_without_feature_maps_is_refused(tmp_path, capsys):
    pytest.importorskip("sklearn")
    run = tmp_path / "mlp"
    assert main(["train", "digits-mlp", "--epochs", "1", "--max-steps", "1", "--no-plots", "--out", str(run)]) == 0
    sample = tmp_path / "x.npy"
    np.save(sample, np.random.default_rng(0).random((1, 64)).astype(np.float32))
    capsys.readouterr()
    assert main(["explain", str(run), str(sample), "--method", "gradcam"]) == 2
    assert "gradcam needs image inputs (N, C, H, W)" in capsys.readouterr().err
    # Attribution methods work on the flat 8x8 inputs and draw them on the image grid.
    out = tmp_path / "sal.png"
    assert main(["explain", str(run), str(sample), "--method", "saliency", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG


# --------------------------------------------------------------------------- plotting helpers
def test_heatmap_array_scaling():
    a = np.array([[-2.0, 1.0], [0.0, 0.5]])
    np.testing.assert_allclose(heatmap_array(a), [[1.0, 0.5], [0.0, 0.25]])
    np.testing.assert_allclose(heatmap_array(a, sign="positive"), [[0.0, 1.0], [0.0, 0.5]])
    np.testing.assert_allclose(heatmap_array(a, sign="all"), [[-1.0, 0.5], [0.0, 0.25]])
    np.testing.assert_allclose(heatmap_array(np.stack([a, a])), heatmap_array(2 * a))  # channels summed
    with pytest.raises(ValueError, match="sign must be"):
        heatmap_array(a, sign="negative")
    with pytest.raises(ValueError, match="must be an \\(H, W\\) map"):
        heatmap_array(np.zeros(5))


def test_plots_are_written_atomically_as_png(tmp_path):
    pytest.importorskip("matplotlib")
    from somanet import nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).eval()
    x = np.random.default_rng(0).random((1, 1, 6, 6)).astype(np.float32)
    attr = Saliency(model).attribute(x, target=1)
    path = plot_image_heatmap(attr[0], tmp_path / "img.png", image=x[0], title="saliency")
    assert path == str(tmp_path / "img.png")
    plot_image_heatmap(attr[0], tmp_path / "alone.png", cmap="magma", colorbar=False)
    plot_token_heatmap(np.random.default_rng(1).random((4, 4)), tmp_path / "tok.png", ["the", "cat", "sat", "."])
    plot_token_heatmap(np.arange(3.0), tmp_path / "row.png", ["a", "b", "c"])
    for name in ("img.png", "alone.png", "tok.png", "row.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone.png", "img.png", "row.png", "tok.png"]
    with pytest.raises(ValueError, match="need 4 x_tokens and 4 y_tokens, got 3"):
        plot_token_heatmap(np.ones((4, 4)), tmp_path / "bad.png", ["a", "b", "c"])
    with pytest.raises(ValueError, match="alpha must be in"):
        plot_image_heatmap(np.ones((2, 2)), tmp_path / "bad.png", alpha=2)
    with pytest.raises(ValueError, match="image must be"):
        plot_image_heatmap(np.ones((2, 2)), tmp_path / "bad.png", image=np.ones((2, 2, 5)))
    assert not (tmp_path / "bad.png").exists()
