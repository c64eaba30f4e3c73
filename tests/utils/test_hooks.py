"""``somanet.utils.hooks.RemovableHandle``: the one handle module and optimizer hook registrations return."""
import somanet
from somanet import nn
from somanet.utils.hooks import RemovableHandle


def test_module_and_optimizer_hooks_share_one_handle_type_with_unique_ids():
    model = nn.Linear(2, 2)
    opt = somanet.optim.SGD(model.parameters(), lr=0.1)
    calls = []
    h1 = model.register_forward_hook(lambda m, args, out: calls.append("forward"))
    h2 = opt.register_step_post_hook(lambda o, args, kwargs: calls.append("step"))
    assert isinstance(h1, RemovableHandle) and isinstance(h2, RemovableHandle)
    assert h1.id != h2.id
    model(somanet.randn(3, 2)).sum().backward()
    opt.step()
    assert calls == ["forward", "step"]
    h1.remove()
    h2.remove()
    h2.remove()  # removing twice is a no-op, as in PyTorch
    model(somanet.randn(3, 2)).sum().backward()
    opt.step()
    assert calls == ["forward", "step"]


def test_handle_as_context_manager_removes_the_hook():
    model = nn.Linear(2, 2)
    seen = []
    with model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape)):
        model(somanet.randn(1, 2))
    model(somanet.randn(4, 2))
    assert seen == [(1, 2)]
