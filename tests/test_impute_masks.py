"""matnet.masks: each mask maker gives the promised counts and sizes; bad masks are one-line errors."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from matnet.config import ConfigError

from matnet.sections import DataConfig
from matnet.masks import (MaskError, read_mask_image, boxes_to_mask, centre_mask, fixed_masks, mask_maker, occluder_boxes,
                          quadrant_masks)


def one_line(err: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(err.value), str(err.value)
    return str(err.value)


def quadrant_blocks(known: torch.Tensor) -> torch.Tensor:
    """[n, 4] known-pixel counts of the four 14x14 quadrants of 28x28 masks (TL, TR, BL, BR)."""
    k = known[:, 0].view(-1, 2, 14, 2, 14).sum((2, 4))
    return k.flatten(1)


@pytest.mark.parametrize("visible", [1, 2, 3])
def test_quadrants_show_exactly_the_asked_number_of_whole_quadrants(visible):
    known = quadrant_masks(500, 28, visible, torch.Generator().manual_seed(0))
    assert known.shape == (500, 1, 28, 28) and known.dtype == torch.bool
    blocks = quadrant_blocks(known)
    assert set(blocks.unique().tolist()) <= {0, 196}          # each quadrant wholly known or wholly hidden
    assert ((blocks == 196).sum(1) == visible).all()
    # Which quadrants: drawn per example, every quadrant shown about visible/4 of the time.
    freq = (blocks == 196).float().mean(0)
    assert torch.allclose(freq, torch.full((4,), visible / 4), atol=0.07), freq


def test_quadrants_by_default_show_one_to_three_drawn_per_example():
    known = quadrant_masks(3000, 28, 0, torch.Generator().manual_seed(1))
    shown = (quadrant_blocks(known) == 196).sum(1)
    counts = torch.bincount(shown, minlength=5)
    assert counts[0] == 0 and counts[4] == 0
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts[1:4].tolist()), counts
    # Seeded: the same generator seed gives the same masks.
    assert torch.equal(known, quadrant_masks(3000, 28, 0, torch.Generator().manual_seed(1)))


def test_occluders_are_whole_squares_placed_uniformly_where_they_fit():
    size, side, count = 64, 20, 3
    boxes = occluder_boxes(4000, size, count, side, torch.Generator().manual_seed(2))
    assert boxes.shape == (4000, count, 2)
    assert boxes.min() == 0 and boxes.max() == size - side     # every position that fits is used ...
    hist = torch.bincount(boxes.flatten(), minlength=size - side + 1).float()
    assert hist.numel() == size - side + 1 and hist.min() > 0.7 * hist.mean()  # ... about equally often
    known = boxes_to_mask(boxes[:50], size, side)
    assert known.shape == (50, 1, size, size)
    for i in range(50):  # the hidden pixels are exactly the union of the squares
        expect = torch.ones(size, size, dtype=torch.bool)
        for r, c in boxes[i].tolist():
            expect[r:r + side, c:c + side] = False
        assert torch.equal(known[i, 0], expect)
    hidden = (~known).sum((1, 2, 3))
    assert (hidden >= side * side).all() and (hidden <= count * side * side).all()
    # One occluder: exactly S x S hidden.
    one = boxes_to_mask(occluder_boxes(20, 28, 1, 7, torch.Generator().manual_seed(3)), 28, 7)
    assert ((~one).sum((1, 2, 3)) == 49).all()


def test_centre_square():
    known = centre_mask(2, 28)
    assert ((~known).sum((1, 2, 3)) == 14 * 14).all()
    assert not known[0, 0, 7:21, 7:21].any() and known[0, 0, :7].all() and known[0, 0, 21:].all()
    known = centre_mask(1, 64, 20)
    assert (~known).sum() == 400 and not known[0, 0, 22:42, 22:42].any()


def test_mask_from_an_image_file(tmp_path):
    picture = Image.new("L", (56, 56), 0)
    picture.paste(255, (0, 0, 28, 56))                          # left half white: unknown
    picture.save(tmp_path / "left.png")
    known = read_mask_image(tmp_path / "left.png", 28)[0]                 # resized to the images' 28x28
    assert known.shape == (1, 1, 28, 28)
    assert not known[0, 0, :, :14].any() and known[0, 0, :, 14:].all()
    maker = mask_maker(DataConfig(mask=str(tmp_path / "left.png")), (1, 28, 28))
    assert maker.kind == "file" and torch.equal(maker(3), known.expand(3, -1, -1, -1))


def test_makers_from_the_config_and_their_seeded_draws():
    data = DataConfig(mask="occluders", occluders=2, occluder_size=5)
    maker = mask_maker(data, (1, 28, 28))
    assert maker.describe() == "occluders: 2 of 5x5"
    a, b = fixed_masks(maker, 10, 7), fixed_masks(maker, 10, 7)
    assert torch.equal(a, b) and not torch.equal(a, fixed_masks(maker, 10, 8))
    assert mask_maker(DataConfig(mask="quadrants", visible_quadrants=2), (1, 28, 28)).describe() == \
        "quadrants: 2 of 4 visible"
    assert mask_maker(DataConfig(mask="centre"), (3, 64, 64)).describe() == "centre: 32x32 hidden"


def test_bad_masks_are_one_line_errors(tmp_path):
    with pytest.raises(MaskError, match="not one of quadrants, occluders, centre") as e:
        mask_maker(DataConfig(mask="stripes"), (1, 28, 28))
    one_line(e)
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(MaskError, match="not a readable image") as e:
        mask_maker(DataConfig(mask=str(tmp_path / "broken.png")), (1, 28, 28))
    one_line(e)
    Image.new("L", (28, 28), 0).save(tmp_path / "black.png")
    with pytest.raises(MaskError, match="no white pixel") as e:
        read_mask_image(tmp_path / "black.png", 28)
    one_line(e)
    with pytest.raises(ConfigError, match="side") as e:
        mask_maker(DataConfig(mask="occluders", occluder_size=40), (1, 28, 28))
    one_line(e)
    with pytest.raises(ConfigError, match="visible"):
        mask_maker(DataConfig(mask="quadrants", visible_quadrants=4), (1, 28, 28))
