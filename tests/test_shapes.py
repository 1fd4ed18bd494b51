"""The shapes world and its judge: determinism, caption/scene agreement, the judge's accuracy."""
import numpy as np
import pytest

from sdlab import shapes


def test_same_seed_same_scenes_and_other_seed_differs():
    a, b = shapes.sample(20, seed=3, p_two=0.3), shapes.sample(20, seed=3, p_two=0.3)
    c = shapes.sample(20, seed=4, p_two=0.3)
    assert [s.caption for s in a] == [s.caption for s in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert [s.caption for s in a] != [s.caption for s in c]


def test_images_are_64x64_rgb_on_the_dark_background():
    for scene in shapes.sample(10, seed=0):
        assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
        assert tuple(scene.image[0, 0]) == shapes.BACKGROUND  # corners are never covered


def test_captions_name_the_scene_words():
    """Every caption names colour and shape; size and place appear unless dropped, never wrong."""
    other = {a: set(v) for a, v in (("size", shapes.SIZES), ("colour", shapes.COLOURS), ("shape", shapes.SHAPES))}
    for scene in shapes.sample(500, seed=1):
        (thing,) = scene.things
        words = scene.caption.replace(",", " ").replace(":", " ").split()
        assert thing.colour in words and thing.shape in words, scene.caption
        for attr, values in other.items():
            assert not (values - {getattr(thing, attr)}) & set(words), scene.caption
        place_words = {p for p in shapes.POSITIONS if p != thing.position} | {"middle", "centered", "below"} - set(
            " ".join(shapes._PLACE_WORDS[thing.position]).split())
        assert not place_words & set(words), scene.caption


def test_captions_vary_in_wording():
    red = shapes.Thing("red", "circle", "left", "large")
    captions = {s.caption for s in shapes.sample(400, seed=2) if s.things[0] == red}
    captions |= {shapes.describe(red, np.random.default_rng(i)) for i in range(60)}
    assert len(captions) >= 10
    assert {"a large red circle on the left", "red circle, left"} & captions


def test_articles_before_vowels():
    assert shapes.Thing("orange", "square", "top", "small").prompt() == "a small orange square at the top"
    pair = shapes.describe_pair(shapes.Thing("orange", "circle", "left", "large"),
                                shapes.Thing("blue", "square", "right", "small"), np.random.default_rng(0))
    assert pair.startswith(("an orange", "a large orange"))


def test_two_object_scenes_have_two_distinct_objects_on_opposite_sides():
    for scene in shapes.sample(200, seed=5, p_two=1.0):
        first, second = scene.things
        assert (first.position, second.position) in shapes.TWO_OBJECT_LAYOUTS
        assert (first.colour, first.shape) != (second.colour, second.shape)
        assert " and " in scene.caption


def test_judge_reads_what_was_drawn():
    thing = shapes.Thing("purple", "triangle", "bottom", "large")
    assert shapes.judge(shapes.draw([thing])) == (thing,)
    assert shapes.judge(shapes.draw([])) == ()


@pytest.mark.parametrize("p_two", [0.0, 1.0])
def test_judge_accuracy_at_least_99_percent(p_two):
    acc = shapes.judge_accuracy(n=300, seed=777, p_two=p_two)
    assert min(acc.values()) >= 0.99, acc


def test_judge_fails_on_wrong_colour():
    thing = shapes.Thing("red", "circle", "left", "large")
    image = shapes.draw([thing])
    image[shapes.foreground(image)] = shapes.COLOURS["blue"]
    expected = {"colour": False, "shape": True, "position": True, "size": True}
    assert shapes.match([thing], shapes.judge(image)) == expected


def test_unknown_attribute_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown colour 'pink'"):
        shapes.Thing("pink", "circle", "left", "large")
    with pytest.raises(ValueError, match="64x64"):
        shapes.judge(np.zeros((32, 32, 3), np.uint8))


def test_all_things_covers_every_combination():
    things = shapes.all_things()
    assert len(things) == len(set(things)) == 6 * 3 * 5 * 2
