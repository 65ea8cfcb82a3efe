"""``optim.rebuild_schedule``: a cosine schedule resumed with more epochs follows the new total, not lr 0."""

from __future__ import annotations

import math

import torch

from cxrlab.config import ScheduleConfig
from cxrlab.train.optim import build_scheduler, rebuild_schedule, schedule_state


def _sched(epochs: int):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return build_scheduler(opt, ScheduleConfig(name="cosine", per_step=False, warmup_epochs=0), 1.0, epochs, 1)


def test_saved_schedule_at_its_end_is_rebuilt_for_the_new_total():
    old = _sched(2)
    for _ in range(2):
        old.optimizer.step()
        old.step()
    assert old.optimizer.param_groups[0]["lr"] == 0.0  # the old plan has ended
    new = _sched(4)
    planned = schedule_state(new)
    new.load_state_dict(old.state_dict())  # what --resume does: the saved total (2) comes back with it
    assert schedule_state(new) != planned
    assert rebuild_schedule(new, planned) == (2, 4)
    # cosine at step 2 of 4 (hand-computed): 0.5 * (1 + cos(pi / 2)) = 0.5
    assert math.isclose(new.optimizer.param_groups[0]["lr"], 0.5)
    new.optimizer.step()
    new.step()
    assert math.isclose(new.optimizer.param_groups[0]["lr"], 0.5 * (1 + math.cos(math.pi * 3 / 4)))
    assert rebuild_schedule(new, planned) is None  # nothing to do once it matches
