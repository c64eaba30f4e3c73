"""The examples a user copies from must keep working."""
import importlib.util
import os

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spirals_reaches_99_percent_train_accuracy(capsys):
    accuracy = _load("spirals").main()
    assert accuracy >= 0.99
    assert "final train accuracy" in capsys.readouterr().out
