"""A CxrlabError raised inside a DataLoader worker reaches the caller as the same one line (torch re-raises it
in the parent with the worker's traceback folded into the message)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cxrlab.errors import CxrlabError


class Broken(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        raise CxrlabError("images/x.png: not a PNG: the file is truncated; re-download it")


def test_a_worker_error_is_one_line():
    with pytest.raises(CxrlabError) as caught:
        next(iter(DataLoader(Broken(), num_workers=1)))
    assert str(caught.value) == "images/x.png: not a PNG: the file is truncated; re-download it"


def test_a_plain_message_is_kept_whole():
    assert str(CxrlabError("Caught nothing: one line")) == "Caught nothing: one line"
