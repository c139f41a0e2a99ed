"""empirical.digests: one SHA-256 of tensors for every kept result that depends on them."""

import hashlib

import pytest
import torch
from torch import nn

from empirical.digests import model_sha256, tensor_sha256


def test_a_digest_is_the_sha256_of_the_tensors_numpy_bytes_so_recorded_digests_keep_their_value():
    images, labels = torch.rand(5, 3, 4, 4), torch.randint(0, 10, (5,))
    expected = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
    assert tensor_sha256(images, labels) == expected
    assert tensor_sha256(images.transpose(2, 3)) == hashlib.sha256(
        images.transpose(2, 3).contiguous().numpy().tobytes()).hexdigest()


def test_a_digest_changes_with_one_element_and_with_the_order_of_its_parts():
    images, labels = torch.rand(5, 3, 4, 4), torch.randint(0, 10, (5,))
    changed = images.clone()
    changed[2, 1, 0, 3] += 1e-6
    assert tensor_sha256(changed, labels) != tensor_sha256(images, labels)
    assert tensor_sha256(labels, images) != tensor_sha256(images, labels)


def test_a_models_digest_covers_its_names_and_its_bf16_weights_and_nothing_else_is_hashed():
    model = nn.Linear(3, 2).to(torch.bfloat16)
    same = nn.Linear(3, 2).to(torch.bfloat16)
    same.load_state_dict(model.state_dict())
    assert model_sha256(same) == model_sha256(model)
    with torch.no_grad():
        same.bias[0] += 1
    assert model_sha256(same) != model_sha256(model)
    with pytest.raises(TypeError, match="got int"):
        tensor_sha256(torch.zeros(2), 3)
