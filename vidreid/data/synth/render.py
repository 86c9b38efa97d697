"""In-memory renderer of synthetic pedestrians: the built-in data of vidreid.

A person is an :class:`Identity`: categorical attributes (gender, build, clothing colours,
bag, hat...) plus the continuous parameters that draw them. A :class:`CameraStyle` is a
scene (wall, floor, structures), an illumination gain and colour cast, a blur, a framing
scale, a detector jitter and the walking directions the camera usually sees.
:func:`render_tracklet` draws an articulated walking figure (head, torso, two arms, two
legs) whose joint angles follow a gait phase, as a detector crop that follows the person,
optionally with an occlusion event (pole, car, bin or passer-by).

Why this design: re-ID needs identity cues that survive viewpoint, illumination and pose
changes, with look-alikes (near-duplicate identities) so the problem is not trivial. It
must also be fast (data for tests and benchmarks is generated on one core), so a frame is
a label map drawn with PIL polygons (all frames of a tracklet in one tall image), coloured
by a per-tracklet palette lookup and composited on a panning background in numpy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage, signal

# ----------------------------------------------------------------------------- attributes

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "white": (226, 226, 220),
    "grey": (125, 125, 128),
    "red": (185, 32, 38),
    "orange": (228, 122, 32),
    "yellow": (226, 200, 52),
    "green": (42, 122, 62),
    "blue": (42, 82, 172),
    "purple": (112, 52, 134),
    "pink": (232, 142, 172),
    "brown": (112, 72, 42),
    "beige": (202, 182, 140),
}
SKIN_RGB: dict[str, tuple[int, int, int]] = {
    "light": (236, 198, 172),
    "medium": (204, 158, 122),
    "tan": (164, 112, 76),
    "dark": (98, 66, 46),
}
HAIR_RGB: dict[str, tuple[int, int, int]] = {
    "black": (24, 20, 20),
    "brown": (92, 56, 30),
    "blonde": (212, 182, 112),
    "grey": (162, 162, 160),
    "red": (152, 62, 30),
}

#: Vocabulary of every attribute, in column order; values are human-readable categories.
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "gender": ("male", "female"),
    "build": ("slim", "average", "heavy"),
    "height": ("short", "medium", "tall"),
    "skin": tuple(SKIN_RGB),
    "hair_color": tuple(HAIR_RGB),
    "hair_length": ("short", "long"),
    "upper_color": tuple(COLOR_RGB),
    "upper_pattern": ("plain", "stripes", "logo", "two_tone"),
    "lower_color": ("black", "grey", "blue", "brown", "beige", "white", "green", "red"),
    "lower_type": ("trousers", "shorts", "skirt"),
    "shoes": ("black", "white", "brown", "grey", "red", "blue"),
    "bag": ("none", "backpack", "handbag", "shoulder_bag"),
    "hat": ("none", "cap", "beanie"),
}
#: Names of the attribute table columns, in order (the table's first column is pid).
ATTRIBUTE_COLUMNS: tuple[str, ...] = tuple(ATTRIBUTE_VALUES)
#: Semantic groups for attribute-driven methods (gender/build, head, upper, lower, accessories).
ATTRIBUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "body": ("gender", "build", "height", "skin"),
    "head": ("hair_color", "hair_length", "hat"),
    "upper": ("upper_color", "upper_pattern"),
    "lower": ("lower_color", "lower_type", "shoes"),
    "accessories": ("bag",),
}

# Priors (dark clothes dominate in surveillance footage, so look-alikes are common).
_PRIORS: dict[str, tuple[float, ...]] = {
    "build": (0.3, 0.5, 0.2),
    "height": (0.25, 0.5, 0.25),
    "skin": (0.35, 0.3, 0.2, 0.15),
    "hair_color": (0.45, 0.3, 0.12, 0.08, 0.05),
    "upper_color": (0.2, 0.12, 0.12, 0.08, 0.03, 0.04, 0.07, 0.12, 0.04, 0.05, 0.06, 0.07),
    "upper_pattern": (0.55, 0.15, 0.15, 0.15),
    "lower_color": (0.3, 0.17, 0.25, 0.08, 0.1, 0.04, 0.03, 0.03),
    "shoes": (0.4, 0.25, 0.15, 0.1, 0.05, 0.05),
    "bag": (0.45, 0.25, 0.15, 0.15),
    "hat": (0.75, 0.15, 0.1),
}
_LONG_HAIR_P = {"male": 0.12, "female": 0.75}
_LOWER_TYPE_P = {"male": (0.85, 0.15, 0.0), "female": (0.55, 0.15, 0.3)}
_BUILD_WIDTH = {"slim": 0.88, "average": 1.0, "heavy": 1.2}
_HEIGHT_FACTOR = {"short": 0.88, "medium": 0.94, "tall": 1.0}
_BAG_COLORS = ("black", "brown", "grey", "blue", "red", "beige")
#: Attributes a near-duplicate may differ in (gender and skin stay: they define the person).
_NEAR_DUP_MUTABLE = ("build", "height", "hair_color", "hair_length", "upper_color",
                     "upper_pattern", "lower_color", "lower_type", "shoes", "bag", "hat")
_COLOR_JITTER = 10.0  # per-channel std of an identity's shade around the named colour


@dataclass(frozen=True)
class Identity:
    """One synthetic person: attribute table row plus the parameters that draw it.

    Colours are RGB tuples before camera effects; ``width`` scales body widths (build),
    ``height`` the figure height (relative to the camera's framing), ``gait_period`` is
    frames per stride cycle, ``bag_side`` is the carrying side (+1 right, -1 left).
    ``near_duplicate_of`` is the pid this identity was derived from, if any.
    """

    pid: int
    attributes: dict[str, str]
    skin_rgb: tuple[int, int, int]
    hair_rgb: tuple[int, int, int]
    upper_rgb: tuple[int, int, int]
    upper2_rgb: tuple[int, int, int]
    lower_rgb: tuple[int, int, int]
    shoe_rgb: tuple[int, int, int]
    bag_rgb: tuple[int, int, int]
    hat_rgb: tuple[int, int, int]
    width: float
    height: float
    gait_period: float
    arm_swing: float
    bag_side: int
    near_duplicate_of: int | None = None


def _shade(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """An individual shade of a named colour (brightness and hue jitter)."""
    c = np.asarray(rgb, float) * rng.uniform(0.88, 1.12) + rng.normal(0, _COLOR_JITTER, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _pick(rng: np.random.Generator, column: str, exclude: str | None = None,
          probs: tuple[float, ...] | None = None) -> str:
    values = ATTRIBUTE_VALUES[column]
    p = np.asarray(probs if probs is not None else _PRIORS.get(column, [1.0] * len(values)),
                   float)
    if exclude is not None:
        p = p * (np.asarray(values) != exclude)
    return str(values[rng.choice(len(values), p=p / p.sum())])


def _sample_value(rng: np.random.Generator, column: str, attrs: dict[str, str],
                  exclude: str | None = None) -> str:
    """Sample one attribute value given the others (gender-dependent hair and skirts)."""
    gender = attrs.get("gender", "male")
    if column == "gender":
        return _pick(rng, column, exclude, (0.55, 0.45))
    if column == "hair_length":
        p = _LONG_HAIR_P[gender]
        return _pick(rng, column, exclude, (1 - p, p))
    if column == "lower_type":
        return _pick(rng, column, exclude, _LOWER_TYPE_P[gender])
    return _pick(rng, column, exclude)


def _params_for(rng: np.random.Generator, column: str, attrs: dict[str, str]) -> dict:
    """Rendering parameters that follow from one attribute's value."""
    v = attrs[column]
    if column == "build":
        return {"width": _BUILD_WIDTH[v] * rng.uniform(0.96, 1.04)}
    if column == "height":
        return {"height": _HEIGHT_FACTOR[v] * rng.uniform(0.98, 1.02)}
    if column == "skin":
        return {"skin_rgb": _shade(rng, SKIN_RGB[v])}
    if column == "hair_color":
        return {"hair_rgb": _shade(rng, HAIR_RGB[v])}
    if column == "upper_color":
        return {"upper_rgb": _shade(rng, COLOR_RGB[v])}
    if column == "upper_pattern":
        second = _pick(rng, "upper_color", exclude=attrs["upper_color"])
        return {"upper2_rgb": _shade(rng, COLOR_RGB[second])}
    if column == "lower_color":
        return {"lower_rgb": _shade(rng, COLOR_RGB[v])}
    if column == "shoes":
        return {"shoe_rgb": _shade(rng, COLOR_RGB[v])}
    if column == "bag":
        color = _BAG_COLORS[rng.integers(len(_BAG_COLORS))]
        return {"bag_rgb": _shade(rng, COLOR_RGB[color]), "bag_side": int(rng.choice([-1, 1]))}
    if column == "hat":
        return {"hat_rgb": _shade(rng, COLOR_RGB[_pick(rng, "upper_color")])}
    return {}


def _new_identity(pid: int, rng: np.random.Generator) -> Identity:
    attrs: dict[str, str] = {}
    for col in ATTRIBUTE_COLUMNS:
        attrs[col] = _sample_value(rng, col, attrs)
    params: dict = {}
    for col in ATTRIBUTE_COLUMNS:
        params.update(_params_for(rng, col, attrs))
    return Identity(pid=pid, attributes=attrs, gait_period=float(rng.uniform(24.0, 34.0)),
                    arm_swing=float(rng.uniform(0.25, 0.45)), **params)


def _near_duplicate(base: Identity, pid: int, rng: np.random.Generator) -> Identity:
    """A look-alike of ``base``: same everything except one or two attributes."""
    attrs = dict(base.attributes)
    n_changes = int(rng.integers(1, 3))
    params: dict = {}
    for col in rng.choice(_NEAR_DUP_MUTABLE, size=n_changes, replace=False):
        col = str(col)
        if col == "lower_type" and attrs["gender"] == "male" and attrs[col] == "shorts":
            col = "lower_color"  # a male's only other option would be skirt-free trousers
        attrs[col] = _sample_value(rng, col, attrs, exclude=attrs[col])
        params.update(_params_for(rng, col, attrs))
        if col == "upper_color" and attrs["upper_pattern"] != "plain":
            params.update(_params_for(rng, "upper_pattern", attrs))
    return replace(base, pid=pid, attributes=attrs, near_duplicate_of=base.pid,
                   gait_period=base.gait_period * float(rng.uniform(0.95, 1.05)), **params)


def sample_identities(n: int, rng: np.random.Generator, near_duplicate_rate: float = 0.2,
                      first_pid: int = 1) -> list[Identity]:
    """Sample ``n`` identities with pids ``first_pid .. first_pid + n - 1``.

    Each identity after the first is, with probability ``near_duplicate_rate``, a
    near-duplicate of an earlier original one (differs in one or two attributes), so
    that ranking needs fine cues rather than the dominant colour.
    """
    if n < 0:
        raise ValueError(f"number of identities must be >= 0, got {n}")
    if not 0.0 <= near_duplicate_rate <= 1.0:
        raise ValueError(f"near_duplicate_rate must be in [0, 1], got {near_duplicate_rate}")
    out: list[Identity] = []
    originals: list[Identity] = []
    for pid in range(first_pid, first_pid + n):
        dup = rng.random() < near_duplicate_rate
        if dup and originals:
            out.append(_near_duplicate(originals[rng.integers(len(originals))], pid, rng))
        else:
            ident = _new_identity(pid, rng)
            originals.append(ident)
            out.append(ident)
    return out


# ----------------------------------------------------------------------------- cameras

#: Walking directions, as the angle of the walking direction seen from above
#: (0 = towards image right, pi/2 = towards the camera).
DIRECTIONS: dict[str, float] = {"right": 0.0, "towards": np.pi / 2, "left": np.pi,
                                "away": 3 * np.pi / 2}
_DIRECTION_JITTER = 0.25  # rad: directions are not exactly profile / frontal
_WALL_COLORS = ((150, 140, 125), (180, 175, 165), (110, 105, 100), (160, 150, 120),
                (90, 95, 105), (200, 195, 185), (130, 120, 110))
_FLOOR_COLORS = ((120, 118, 112), (95, 92, 88), (150, 140, 125), (80, 82, 85),
                 (135, 120, 100), (170, 165, 155))
_REFERENCE_HEIGHT = 256  # blur sigmas are given in pixels at this crop height


@dataclass(frozen=True)
class CameraStyle:
    """How one camera sees people: scene, light, optics, framing and usual viewpoints.

    ``horizon`` is the wall/floor boundary as a fraction of the crop height;
    ``gain`` and ``cast`` (per-channel RGB factors) are the illumination; ``blur_sigma``
    is the optical blur in pixels at 256-pixel crops; ``scale_range`` the figure height
    over the crop height; ``jitter`` the detector box jitter (std, fraction of crop height);
    ``noise`` the sensor noise std in grey levels; ``direction_weights`` the probabilities
    of walking right / towards / left / away.
    """

    camid: int
    scene_seed: int
    wall_rgb: tuple[int, int, int]
    floor_rgb: tuple[int, int, int]
    horizon: float
    gain: float
    cast: tuple[float, float, float]
    blur_sigma: float
    scale_range: tuple[float, float]
    jitter: float
    noise: float
    direction_weights: tuple[float, float, float, float]


def sample_camera(camid: int, rng: np.random.Generator) -> CameraStyle:
    """Sample a camera style (each camera of a dataset gets its own)."""

    def jitter_rgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.normal(0, 12, 3), 0, 255))

    lo = float(rng.uniform(0.78, 0.86))
    weights = rng.dirichlet([1.5, 1.5, 1.5, 1.5])
    return CameraStyle(
        camid=camid,
        scene_seed=int(rng.integers(2**31)),
        wall_rgb=jitter_rgb(_WALL_COLORS[rng.integers(len(_WALL_COLORS))]),
        floor_rgb=jitter_rgb(_FLOOR_COLORS[rng.integers(len(_FLOOR_COLORS))]),
        horizon=float(rng.uniform(0.35, 0.65)),
        gain=float(rng.uniform(0.7, 1.25)),
        cast=tuple(float(v) for v in rng.uniform(0.86, 1.14, 3)),
        blur_sigma=float(rng.uniform(0.5, 1.8)),
        scale_range=(lo, float(lo + rng.uniform(0.04, 0.1))),
        jitter=float(rng.uniform(0.006, 0.02)),
        noise=float(rng.uniform(2.0, 7.0)),
        direction_weights=tuple(float(w) for w in weights),
    )


_MEDIAN_LENGTH = 36  # MARS train median
_LENGTH_LOG_SIGMA = 0.85
_MAX_LENGTH = 900  # MARS maximum


def sample_length(rng: np.random.Generator, max_len: int | None = None, min_len: int = 5) -> int:
    """A MARS-like tracklet length: log-normal with median 36, clipped to [min_len, max_len]."""
    if min_len < 1:
        raise ValueError(f"min_len must be >= 1, got {min_len}")
    if max_len is not None and max_len < min_len:
        raise ValueError(f"max_len ({max_len}) must be >= min_len ({min_len})")
    n = int(round(rng.lognormal(np.log(_MEDIAN_LENGTH), _LENGTH_LOG_SIGMA)))
    n = min(max(n, min_len), _MAX_LENGTH)
    return n if max_len is None else min(n, max_len)


@functools.lru_cache(maxsize=32)
def _scene(camera: CameraStyle, h: int, w: int, pad: int) -> np.ndarray:
    """The camera's background strip, lit and noisy: [h + 2 pad, period + w, 3] uint8.

    Horizontally periodic (period ``4 w``) and stored with ``w`` wrapped columns so that any
    crop is a plain slice.
    """
    rng = np.random.default_rng(camera.scene_seed)
    hs, period = h + 2 * pad, 4 * w
    horizon = int(pad + camera.horizon * h)
    rows = np.arange(hs, dtype=np.float32)[:, None]
    wall_grad = 1.1 - 0.2 * rows / max(horizon, 1)
    floor_grad = 0.85 + 0.2 * (rows - horizon) / max(hs - horizon, 1)
    grad = np.where(rows < horizon, wall_grad, floor_grad)
    base = np.where(rows[..., None] < horizon, np.float32(camera.wall_rgb),
                    np.float32(camera.floor_rgb))
    img = Image.fromarray(np.clip(base * grad[..., None], 0, 255).astype(np.uint8)
                          .repeat(period, axis=1))
    draw = ImageDraw.Draw(img)
    line = max(1, h // 128)

    def rect(x0: float, y0: float, x1: float, y1: float, rgb: np.ndarray) -> None:
        fill = tuple(int(v) for v in np.clip(rgb, 0, 255))
        y0, y1 = min(y0, y1), max(y0, y1)  # float round-off can swap thin rectangles
        for shift in (0, -period):  # draw twice so the strip wraps around
            draw.rectangle([x0 + shift, y0, x1 + shift, y1], fill=fill)

    wall = np.asarray(camera.wall_rgb, float)
    for _ in range(int(rng.integers(3, 7))):  # pillars, doors, shop fronts
        x0 = rng.uniform(0, period)
        x1 = x0 + rng.uniform(0.15, 0.8) * w
        top = rng.uniform(0, 0.5) * horizon
        accent = rng.random() < 0.3
        rgb = rng.uniform(40, 220, 3) if accent else wall * rng.uniform(0.6, 1.3)
        rect(x0, top, x1, horizon, rgb)
        if rng.random() < 0.5:  # window panes
            pane = rgb * 0.55
            ny = int(rng.integers(1, 4))
            for k in range(ny):
                y0 = top + (horizon - top) * (k + 0.2) / ny
                rect(x0 + 0.15 * (x1 - x0), y0, x1 - 0.15 * (x1 - x0),
                     y0 + 0.6 * (horizon - top) / ny, pane)
    rect(0, horizon - 0.02 * h, period, horizon, wall * 0.6)  # skirting
    floor = np.asarray(camera.floor_rgb, float) * 0.82
    n_tiles = int(rng.integers(3, 7))
    for k in range(1, n_tiles + 1):  # perspective tile rows get wider towards the camera
        y = horizon + (hs - horizon) * (k / n_tiles) ** 1.7
        rect(0, y, period, y + line - 1, floor)
    n_cols = int(rng.choice([4, 6, 8]))
    for k in range(n_cols):
        x = k * period / n_cols
        rect(x, horizon, x + line - 1, hs, floor)
    scene = np.asarray(img, dtype=np.float32)
    blotch = rng.normal(1.0, 0.06, (max(hs // 16, 2), period // 16 + 1)).astype(np.float32)
    blotch = np.asarray(Image.fromarray(blotch).resize((period + 16, hs), Image.BILINEAR))
    scene *= blotch[:, :period, None]
    scene += rng.normal(0, camera.noise, scene.shape).astype(np.float32)
    scene *= camera.gain * np.asarray(camera.cast, np.float32)
    out = np.clip(scene, 0, 255).astype(np.uint8)
    out = np.concatenate([out, out[:, :w]], axis=1)
    out.flags.writeable = False
    return out


# ----------------------------------------------------------------------------- the figure

# Body proportions, fractions of the figure height (head top to sole).
HEAD_H, NECK_H, TORSO_H, THIGH_L, SHIN_L, FOOT_H = 0.13, 0.035, 0.31, 0.245, 0.245, 0.035
UPPER_ARM_L, FOREARM_L = 0.17, 0.16
SHOULDER_W = {"male": 0.245, "female": 0.215}  # lateral, times the build factor
HIP_W = {"male": 0.19, "female": 0.205}
TORSO_DEPTH = 0.13
HEAD_W, HEAD_DEPTH = 0.105, 0.12
THIGH_W, SHIN_W, UPPER_ARM_W, FOREARM_W = 0.085, 0.065, 0.062, 0.052
HIP_SWING, KNEE_FLEX = 0.42, 0.95  # rad: thigh swing amplitude, knee flexion in mid-swing
STRIDE_PER_CYCLE = 0.8  # distance walked per gait cycle, in figure heights
STRIPE_PERIOD = 0.05  # stripes on the upper body
FAR_SHADE = 0.72  # far-side limbs are darker (cheap depth cue)

# Label map values; label + FAR is the darker far-side version of the same colour.
BG, SKIN, HAIR, UPPER, UPPER2, LOWER, SHOES, BAG, HAT, SLEEVE, SLEEVE2, BAG_DARK, HAT_DARK = \
    range(13)
FAR = 16

#: A frame counts as occluded when the occluder covers at least this fraction of the person.
OCCLUSION_MIN_FRACTION = 0.05
OCCLUSION_RUN = (0.2, 0.6)  # an event lasts this fraction of the tracklet
OCCLUDER_KINDS = ("pole", "car", "bin", "pedestrian")


def _lut(mapping: dict[int, int]) -> np.ndarray:
    lut = np.arange(2 * FAR, dtype=np.uint8)
    for a, b in mapping.items():
        lut[a], lut[a + FAR] = b, b + FAR
    return lut


_STRIPE_LUT = _lut({UPPER: UPPER2, SLEEVE: SLEEVE2})  # stripes run over sleeves too
_TWO_TONE_LUT = _lut({UPPER: UPPER2})


@dataclass
class RenderedTracklet:
    """A rendered tracklet and its ground truth (T frames of H x W)."""

    frames: np.ndarray  # [T, H, W, 3] uint8: what the camera sees (with the occluder)
    silhouette: np.ndarray  # [T, H, W] bool: the whole person incl. hat and bag
    occluder: np.ndarray  # [T, H, W] bool: occluder pixels in front of the person
    clean: np.ndarray  # [T, H, W, 3] uint8: the same render without the occluder
    occluded: np.ndarray  # [T] bool: occluder covers >= OCCLUSION_MIN_FRACTION of the person
    extra: dict = field(default_factory=dict)  # direction, occluder kind and event frames


def _capsule(p0: np.ndarray, p1: np.ndarray, w0, w1) -> np.ndarray:
    """A limb from p0 to p1 ([T, 2]) with end widths w0, w1: hexagon [T, 6, 2]."""
    d = p1 - p0
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    d = np.where(n > 1e-6, d / np.maximum(n, 1e-6), np.array([0.0, 1.0]))
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=-1)
    w0 = np.reshape(w0, (-1, 1)) / 2
    w1 = np.reshape(w1, (-1, 1)) / 2
    return np.stack([p0 + nrm * w0, p1 + nrm * w1, p1 + d * w1 * 0.8, p1 - nrm * w1,
                     p0 - nrm * w0, p0 - d * w0 * 0.8], axis=1)


def _ellipse(c: np.ndarray, rx, ry, a0: float = 0.0, a1: float = 2 * np.pi,
             n: int = 14) -> np.ndarray:
    """Ellipse (or arc a0..a1, closed by its chord) around c [T, 2]: [T, n, 2]."""
    a = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * np.pi - 1e-9)
    rx = np.reshape(rx, (-1, 1))
    ry = np.reshape(ry, (-1, 1))
    return np.stack([c[:, :1] + rx * np.cos(a), c[:, 1:] + ry * np.sin(a)], axis=-1)


def _box(cx: np.ndarray, y0: np.ndarray, y1: np.ndarray, half_w, bevel: float = 0.2) -> np.ndarray:
    """A box with bevelled corners, x-centred on cx, rows y0..y1: [T, 8, 2]."""
    cx, y0, y1, half_w = np.broadcast_arrays(cx, y0, y1, half_w)
    b = bevel * np.minimum(half_w, (y1 - y0) / 2)
    xs = [cx - half_w + b, cx + half_w - b, cx + half_w, cx + half_w, cx + half_w - b,
          cx - half_w + b, cx - half_w, cx - half_w]
    ys = [y0, y0, y0 + b, y1 - b, y1, y1, y1 - b, y0 + b]
    return np.stack([np.stack(xs, -1), np.stack(ys, -1)], axis=-1)


def _pt(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack(np.broadcast_arrays(x, y), axis=-1).astype(np.float64)


def _ar1(rng: np.random.Generator, n: int, std: float, corr: float = 0.6) -> np.ndarray:
    """Temporally correlated noise (detector boxes wobble, they do not teleport)."""
    e = rng.normal(0.0, std, n)
    return signal.lfilter([np.sqrt(1 - corr**2)], [1, -corr], e)


def _figure_parts(ident: Identity, alpha: float, s: np.ndarray, cx: np.ndarray,
                  ground: np.ndarray, phase: np.ndarray) -> tuple[list, np.ndarray]:
    """Polygons of the walking figure, far to near: [(label, [T, K, 2])], and neck rows [T].

    The body is a 3-D stick figure seen orthographically: with walking direction alpha,
    a point ``lat`` to the person's right and ``fwd`` ahead lands at image x
    ``cx + lat * rx + fwd * fx`` and depth ``lat * rz + fwd * fz`` (towards the camera).
    """
    a = ident.attributes
    fx, fz = np.cos(alpha), np.sin(alpha)  # forward axis: image x, depth
    rx, rz = -np.sin(alpha), np.cos(alpha)  # right axis: image x, depth
    arx, afx = abs(rx), abs(fx)
    wf = ident.width
    sw = SHOULDER_W[a["gender"]] * wf
    hw = HIP_W[a["gender"]] * wf
    td = TORSO_DEPTH * wf
    S = s[:, None]

    def x_at(lat: float, fwd: float = 0.0) -> np.ndarray:
        return cx + (lat * rx + fwd * fx) * s

    # Gait: per leg, thigh angle (forward +) and shin angle; arms swing opposite.
    legs = {}
    for side, offset in ((1, 0.0), (-1, np.pi)):
        psi = phase + offset
        thigh = HIP_SWING * np.sin(psi)
        shin = thigh - KNEE_FLEX * np.maximum(0.0, np.cos(psi)) ** 1.5
        legs[side] = (psi, thigh, shin)
    drop = np.maximum(*(THIGH_L * np.cos(t) + SHIN_L * np.cos(sh) for _, t, sh in legs.values()))
    hip_y = ground - (FOOT_H + drop) * s  # the lower foot is on the ground: natural bob
    neck_y = hip_y - TORSO_H * s
    shoulder_y = neck_y + 0.03 * s
    head_c = _pt(cx + 0.012 * fx * s, neck_y - (NECK_H + HEAD_H / 2) * s)
    head_rx = 0.5 * (arx * HEAD_W + afx * HEAD_DEPTH) * s
    head_ry = HEAD_H / 2 * s

    groups: list[tuple[float, int, list]] = []  # (depth, tie order, [(label, poly)])

    def add(depth: float, parts: list) -> None:
        groups.append((depth, len(groups), parts))

    def shade(label: int, depth: float) -> int:
        return label + FAR if depth < -0.03 else label

    # Legs (thigh, shin, shoe) by lower-body type.
    lower_type = a["lower_type"]
    for side, (_psi, thigh, shin) in legs.items():
        lat = side * (hw / 2 - THIGH_W * wf / 2)
        depth = lat * rz - 0.01
        hip = _pt(x_at(lat), hip_y)
        knee = hip + _pt(fx * np.sin(thigh), np.cos(thigh)) * THIGH_L * S
        ankle = knee + _pt(fx * np.sin(shin), np.cos(shin)) * SHIN_L * S
        tw, kw, sw_ = THIGH_W * wf * s, SHIN_W * wf * s * 1.15, SHIN_W * wf * s
        parts = []
        if lower_type == "trousers":
            parts += [(LOWER, _capsule(hip, knee, tw, kw)), (LOWER, _capsule(knee, ankle, kw, sw_))]
        else:
            parts += [(SKIN, _capsule(hip, knee, tw * 0.9, kw * 0.85)),
                      (SKIN, _capsule(knee, ankle, kw * 0.85, sw_ * 0.8))]
            if lower_type == "shorts":
                parts.append((LOWER, _capsule(hip, hip + (knee - hip) * 0.6, tw, tw * 0.95)))
        heel = ankle + _pt(-0.02 * fx, 0.012) * S
        toe = ankle + _pt(0.065 * fx, 0.022) * S
        parts.append((SHOES, _capsule(heel, toe, 0.045 * s, 0.04 * s)))
        add(depth, [(shade(lab, depth), p) for lab, p in parts])
    legs_depth = max(side * (hw / 2) * rz for side in (1, -1))

    # Torso: shoulders, waist (wider for heavy builds), hips; projected width by view.
    half_sh = 0.5 * (arx * sw + afx * td) * S[:, 0]
    half_hip = 0.5 * (arx * hw + afx * td * 0.95) * S[:, 0]
    half_mid = np.maximum(half_sh * 0.88, half_hip) * (1.0 + 0.15 * (wf > 1.1))
    xs = [cx - half_sh * 0.6, cx + half_sh * 0.6, cx + half_sh, cx + half_mid, cx + half_hip,
          cx - half_hip, cx - half_mid, cx - half_sh]
    mid_y = neck_y + 0.55 * TORSO_H * s
    ys = [neck_y, neck_y, shoulder_y + 0.03 * s, mid_y, hip_y + 0.02 * s, hip_y + 0.02 * s,
          mid_y, shoulder_y + 0.03 * s]
    torso = np.stack([np.stack(xs, -1), np.stack(ys, -1)], axis=-1)
    torso[..., 0] += (0.01 * fx * s)[:, None]  # slight forward lean
    torso_parts = [(UPPER, torso)]
    if a["upper_pattern"] == "logo" and fz > -0.3:  # chest patch, seen from the front/side
        logo_c = x_at(0.0, td / 2 * 0.6)
        torso_parts.append((UPPER2, _box(logo_c, neck_y + 0.07 * s, neck_y + 0.14 * s,
                                         (0.04 * arx + 0.012 * afx) * s)))
    bag = a["bag"]
    if bag == "backpack":
        fwd = -(td / 2 + 0.035)
        bp_c = x_at(0.0, fwd)
        pack = _box(bp_c, shoulder_y + 0.01 * s, hip_y - 0.04 * s,
                    0.5 * (arx * 0.19 + afx * 0.08) * wf * s)
        add(fwd * fz, [(BAG, pack)])
        if fz > 0.3:  # straps seen from the front
            for side in (1, -1):
                top = _pt(x_at(side * sw * 0.3), shoulder_y)
                bottom = _pt(x_at(side * sw * 0.33), shoulder_y + 0.17 * s)
                torso_parts.append((BAG_DARK, _capsule(top, bottom, 0.02 * s, 0.02 * s)))
    if bag == "shoulder_bag":
        side = ident.bag_side
        top = _pt(x_at(-side * sw * 0.35), shoulder_y)
        bottom = _pt(x_at(side * hw * 0.5), hip_y - 0.03 * s)
        torso_parts.append((BAG_DARK, _capsule(top, bottom, 0.018 * s, 0.018 * s)))
    add(0.0, torso_parts)

    # Lower garment top (waistband) or skirt, above the legs.
    if lower_type == "skirt":
        swing = 0.03 * fx * np.sin(phase) * s
        hem_y = hip_y + 0.17 * s
        sk_xs = [cx - half_hip * 0.95, cx + half_hip * 0.95,
                 cx + swing + half_hip * 1.45 + afx * 0.03 * s,
                 cx + swing - half_hip * 1.45 - afx * 0.03 * s]
        sk_ys = [hip_y - 0.03 * s, hip_y - 0.03 * s, hem_y, hem_y]
        skirt = np.stack([np.stack(sk_xs, -1), np.stack(sk_ys, -1)], axis=-1)
        add(legs_depth + 1e-3, [(LOWER, skirt)])
    else:
        add(1e-3, [(LOWER, _box(cx, hip_y - 0.03 * s, hip_y + 0.05 * s, half_hip, 0.3))])

    # Arms: upper arm and forearm in sleeve colour, hand in skin; swing opposite the legs.
    for side, (psi, _t, _s) in legs.items():
        lat = side * (sw / 2 + UPPER_ARM_W * wf * 0.3)
        depth = lat * rz + 0.01
        upper = -ident.arm_swing * np.sin(psi)
        fore = upper + 0.15 + 0.35 * np.maximum(0.0, upper) / ident.arm_swing
        shoulder = _pt(x_at(lat), shoulder_y + 0.015 * s)
        elbow = shoulder + _pt(fx * np.sin(upper) + side * rx * 0.03, np.cos(upper)) \
            * UPPER_ARM_L * S
        wrist = elbow + _pt(fx * np.sin(fore) + side * rx * 0.02, np.cos(fore)) * FOREARM_L * S
        hand = wrist + _pt(fx * np.sin(fore), np.cos(fore)) * 0.03 * S
        parts = [(SLEEVE, _capsule(shoulder, elbow, UPPER_ARM_W * wf * s, FOREARM_W * wf * s)),
                 (SLEEVE, _capsule(elbow, wrist, FOREARM_W * wf * s, 0.045 * wf * s)),
                 (SKIN, _ellipse(hand, 0.026 * s, 0.03 * s, n=8))]
        add(depth, [(shade(lab, depth), p) for lab, p in parts])
        if bag == "handbag" and side == ident.bag_side:
            bag_c = wrist + _pt(0.0, 0.03) * S
            handbag = _box(bag_c[:, 0], bag_c[:, 1] + 0.02 * s, bag_c[:, 1] + 0.11 * s,
                           0.5 * (afx * 0.12 + arx * 0.05) * s)
            handle = _capsule(wrist, bag_c + _pt(0.0, 0.02) * S, 0.015 * s, 0.015 * s)
            add(depth + 1e-3, [(shade(BAG_DARK, depth), handle), (shade(BAG, depth), handbag)])
        if bag == "shoulder_bag" and side == ident.bag_side:
            lat_b = side * (hw / 2 + 0.035 * wf)
            bag_c = x_at(lat_b, 0.02)
            sbag = _box(bag_c, hip_y - 0.05 * s, hip_y + 0.05 * s,
                        0.5 * (afx * 0.1 + arx * 0.05) * s)
            add(lat_b * rz + 2e-3, [(shade(BAG, lat_b * rz), sbag)])

    # Head: long hair behind, neck, hair cap, face (if facing the camera), hat.
    head_parts = []
    if a["hair_length"] == "long":
        hair_c = head_c + _pt(-0.02 * fx * s, 0.0)
        back = _box(hair_c[:, 0], hair_c[:, 1], shoulder_y + 0.08 * s, head_rx * 1.08, 0.35)
        add(-0.06 * fz + 1e-3 * (fz <= 0), [(HAIR, back)])
    neck_top = _pt(cx, neck_y - NECK_H * s)
    head_parts.append((SKIN, _capsule(neck_top, _pt(cx, neck_y + 0.01 * s), 0.05 * s * wf,
                                      0.055 * s * wf)))
    head_parts.append((HAIR, _ellipse(head_c + _pt(-0.012 * fx, -0.006) * S, head_rx * 1.05,
                                      head_ry * 1.02)))
    if fz > -0.5:
        face_c = head_c + np.stack([0.3 * fx * head_rx, 0.16 * head_ry], axis=-1)
        face_rx = head_rx * (0.72 + 0.18 * max(fz, 0.0))
        head_parts.append((SKIN, _ellipse(face_c, face_rx, head_ry * 0.84)))
    hat = a["hat"]
    if hat == "cap":
        crown_c = head_c - _pt(0.0, 0.2) * head_ry[:, None]
        head_parts.append((HAT, _ellipse(crown_c, head_rx * 1.1, head_ry * 0.85, np.pi,
                                         2 * np.pi, n=9)))
        if fz > -0.5:
            y_v = crown_c[:, 1]
            p0 = _pt(head_c[:, 0] + fx * 0.3 * head_rx - arx * 0.9 * head_rx, y_v)
            p1 = _pt(head_c[:, 0] + fx * (head_rx + 0.05 * s) + arx * 0.9 * head_rx, y_v)
            head_parts.append((HAT_DARK, _capsule(p0, p1, 0.022 * s, 0.022 * s)))
    elif hat == "beanie":
        crown_c = head_c - _pt(0.0, 0.1) * head_ry[:, None]
        head_parts.append((HAT, _ellipse(crown_c, head_rx * 1.1, head_ry * 1.05, np.pi,
                                         2 * np.pi, n=9)))
        band = _pt(head_c[:, 0], crown_c[:, 1] - 0.01 * s)
        head_parts.append((HAT_DARK, _capsule(band - _pt(head_rx * 1.05, 0), band
                                              + _pt(head_rx * 1.05, 0), 0.03 * s, 0.03 * s)))
    add(0.02, head_parts)

    groups.sort(key=lambda g: (g[0], g[1]))
    return [p for _, _, parts in groups for p in parts], neck_y


def _palette(ident: Identity, gain: np.ndarray) -> np.ndarray:
    """Label -> RGB under the camera light: [2 * FAR, 3] uint8."""
    base = np.zeros((FAR, 3), np.float32)
    for label, rgb in ((SKIN, ident.skin_rgb), (HAIR, ident.hair_rgb), (UPPER, ident.upper_rgb),
                       (UPPER2, ident.upper2_rgb), (LOWER, ident.lower_rgb),
                       (SHOES, ident.shoe_rgb), (BAG, ident.bag_rgb), (HAT, ident.hat_rgb),
                       (SLEEVE, ident.upper_rgb), (SLEEVE2, ident.upper2_rgb)):
        base[label] = rgb
    base[BAG_DARK] = base[BAG] * 0.6
    base[HAT_DARK] = base[HAT] * 0.7
    full = np.concatenate([base, base * FAR_SHADE]) * gain
    return np.clip(full, 0, 255).astype(np.uint8)


def _rasterize(polys: list[tuple[int, np.ndarray]], n: int, h: int, w: int) -> np.ndarray:
    """Draw per-frame label polygons: all frames in one tall PIL image, [n, h, w] uint8.

    Frames are separated by gaps of h/2 rows and every vertex is clamped to its frame's
    band, so a limb that leaves the crop never bleeds into the neighbouring frame.
    """
    gap = h // 2
    stride = h + gap
    img = Image.new("L", (w, n * stride + gap), 0)
    top = (np.arange(n) * stride + gap)[:, None]
    flat = []
    for label, poly in polys:
        p = poly.copy()
        p[..., 1] = np.clip(p[..., 1] + top, top - gap // 2, top + h + gap // 2 - 1)
        flat.append((label, p.reshape(n, -1).tolist()))
    polygon = ImageDraw.Draw(img).polygon
    for t in range(n):
        for label, coords in flat:
            polygon(coords[t], fill=label)
    return np.ascontiguousarray(np.asarray(img)[gap: gap + n * stride]
                                .reshape(n, stride, w)[:, :h])


def _blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.3:
        return frames
    return ndimage.gaussian_filter(frames, (0, sigma, sigma, 0), truncate=2.0)


def _occluder_parts(kind: str, rng: np.random.Generator, u: np.ndarray, h: int, w: int,
                    s: float, phase: np.ndarray) -> list:
    """Occluder polygons for event frames; ``u`` in [0, 1] is the progress of the event."""
    n = len(u)
    sign = rng.choice([-1.0, 1.0])

    def path(a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
        x0, x1 = rng.uniform(*a) * w, rng.uniform(*b) * w
        x0, x1 = (x0, x1) if sign > 0 else (w - x0, w - x1)
        return x0 + (x1 - x0) * u  # smooth linear motion across the crop

    ones = np.ones(n)
    if kind == "pole":
        x = path((0.15, 0.4), (0.6, 0.85))
        half = rng.uniform(0.08, 0.16) * w
        return [(1, _box(x, -ones, (h + 1) * ones, half, 0.0)),
                (2, _box(x - 0.35 * half, -ones, (h + 1) * ones, 0.2 * half, 0.0))]
    if kind == "car":  # covers the lower part, its front sliding across
        x = path((0.2, 0.45), (0.55, 0.85))
        top = h * (1 - rng.uniform(0.35, 0.55))
        body_c = x - sign * w  # the body trails behind its front edge
        body = _box(body_c, top * ones, (h + 1) * ones, w * ones, 0.15)
        glass = _box(body_c, top * ones + 0.05 * h, top * ones + 0.15 * h, w * 0.92 * ones, 0.2)
        wheel = _ellipse(_pt(x - sign * 0.25 * w, h * ones), 0.12 * w * ones, 0.1 * h * ones)
        return [(1, body), (2, glass), (3, wheel)]
    if kind == "bin":
        x = path((0.25, 0.45), (0.55, 0.75))
        half = rng.uniform(0.17, 0.28) * w
        top = h * (1 - rng.uniform(0.25, 0.4))
        return [(1, _box(x, top * ones, (h + 1) * ones, half, 0.1)),
                (2, _box(x, top * ones - 0.02 * h, top * ones + 0.03 * h, half * 1.1, 0.3))]
    # A passer-by closer to the camera: larger and lower, covers one side / the upper body.
    x = path((-0.1, 0.3), (0.55, 1.0))
    ps = s * rng.uniform(1.05, 1.3)
    feet = h * rng.uniform(1.05, 1.3)
    hip = feet - 0.5 * ps
    parts = [(2, _capsule(_pt(x + d * 0.05 * ps, hip), _pt(x + d * 0.05 * ps + d * 0.12 * ps
                                                           * np.sin(phase), feet),
                          0.09 * ps, 0.07 * ps)) for d in (-1.0, 1.0)]
    neck = hip - 0.31 * ps
    parts.append((1, _box(x, neck, hip + 0.03 * ps, 0.13 * ps * ones, 0.35)))
    parts.append((3, _ellipse(_pt(x, neck - 0.1 * ps), 0.055 * ps * ones, 0.066 * ps * ones)))
    return parts


def _occluder_palette(kind: str, rng: np.random.Generator, ident: Identity) -> np.ndarray:
    """Occluder label -> RGB before lighting, [4, 3]."""
    def color(exclude: str | None = None) -> np.ndarray:
        name = _pick(rng, "upper_color", exclude=exclude)
        return np.asarray(_shade(rng, COLOR_RGB[name]), np.float32)

    pal = np.zeros((4, 3), np.float32)
    if kind == "pole":
        pal[1] = rng.choice([(90, 92, 95), (40, 90, 60), (30, 30, 32), (200, 200, 195)])
        pal[2] = np.minimum(pal[1] * 1.4 + 20, 255)
    elif kind == "car":
        pal[1], pal[2], pal[3] = color(), (40, 50, 60), (20, 20, 22)
    elif kind == "bin":
        pal[1] = rng.choice([(60, 70, 60), (40, 60, 120), (90, 90, 90), (130, 40, 30)])
        pal[2] = pal[1] * 0.7
    else:
        upper = color(exclude=ident.attributes["upper_color"])
        pal[1], pal[2] = upper, color(exclude=ident.attributes["lower_color"])
        pal[3] = SKIN_RGB[_pick(rng, "skin")]
    return pal


def render_tracklet(identity: Identity, camera: CameraStyle, length: int,
                    rng: np.random.Generator, *, size: tuple[int, int] = (256, 128),
                    occlusion_rate: float = 0.0,
                    occlusion_run: tuple[float, float] = OCCLUSION_RUN) -> RenderedTracklet:
    """Render ``length`` frames of ``identity`` walking through ``camera``'s view.

    Per tracklet: walking direction (from the camera's weights), gait start phase and
    speed, framing scale and light level; per frame: gait pose, detector jitter, panning
    background. With probability ``occlusion_rate`` one occlusion event covers a
    contiguous run of a fraction of the frames drawn uniformly from ``occlusion_run``
    (default 20-60 %). The clean render does not depend on ``occlusion_rate`` or
    ``occlusion_run`` (the occlusion is sampled last). Deterministic given ``rng``.
    """
    h, w = int(size[0]), int(size[1])
    if length < 1:
        raise ValueError(f"tracklet length must be >= 1, got {length}")
    if h < 32 or w < 16:
        raise ValueError(f"size (H, W) must be at least (32, 16), got {size}")
    if not 0.0 <= occlusion_rate <= 1.0:
        raise ValueError(f"occlusion_rate must be in [0, 1], got {occlusion_rate}")
    if not 0.0 < occlusion_run[0] <= occlusion_run[1] <= 1.0:
        raise ValueError(f"occlusion_run must be (lo, hi) with 0 < lo <= hi <= 1, got "
                         f"{occlusion_run}")
    n = int(length)
    t = np.arange(n)

    # Per tracklet.
    direction = list(DIRECTIONS)[rng.choice(4, p=np.asarray(camera.direction_weights)
                                            / sum(camera.direction_weights))]
    alpha = DIRECTIONS[direction] + rng.normal(0.0, _DIRECTION_JITTER)
    period = identity.gait_period * rng.uniform(0.92, 1.08)
    phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * t / period
    scale = rng.uniform(*camera.scale_range) * identity.height * h
    gain = camera.gain * rng.uniform(0.92, 1.08) * np.asarray(camera.cast, np.float32)
    foot_y = h * rng.uniform(0.965, 0.985)
    pad = int(np.ceil(0.06 * h))
    pan0 = rng.uniform(0, 4 * w)

    # Per frame: detector jitter of the box (moves the figure and the background together).
    dx = _ar1(rng, n, camera.jitter * h)
    dy = _ar1(rng, n, camera.jitter * h * 0.6)
    ds = _ar1(rng, n, camera.jitter * 1.5)
    s = scale * (1 + ds)
    cx = w / 2 + dx
    ground = np.minimum(foot_y + dy, h - 1.0)

    polys, neck_y = _figure_parts(identity, alpha, s, cx, ground, phase)
    labels = _rasterize(polys, n, h, w)
    pattern = identity.attributes["upper_pattern"]
    if pattern in ("stripes", "two_tone"):
        rows = np.arange(h)[None, :] - neck_y[:, None]  # [T, H]
        if pattern == "stripes":
            on = np.floor(rows / max(STRIPE_PERIOD * scale, 2.0)) % 2 == 1
            lut = _STRIPE_LUT
        else:
            on = rows > 0.5 * TORSO_H * s[:, None]
            lut = _TWO_TONE_LUT
        labels = np.where(on[:, :, None], np.take(lut, labels), labels)
    silhouette = labels > 0

    # Background: the crop follows the walker, so the scene pans by the walking speed.
    scene = _scene(camera, h, w, pad)
    period_px = 4 * w
    speed = STRIDE_PER_CYCLE * scale / period * np.cos(alpha)
    ox = np.round(pan0 + speed * t - dx).astype(int) % period_px
    oy = np.clip(np.round(pad - dy).astype(int), 0, 2 * pad)
    windows = np.lib.stride_tricks.sliding_window_view(scene, (h, w, 3))
    person = np.take(_palette(identity, gain), labels, axis=0)  # [T, H, W, 3]
    composite = np.where(silhouette[..., None], person, windows[oy, ox, 0])
    sigma = camera.blur_sigma * h / _REFERENCE_HEIGHT
    clean = _blur(composite, sigma)

    # Occlusion event (sampled last, so the clean render does not depend on the rate).
    occluder = np.zeros((n, h, w), bool)
    occluded = np.zeros(n, bool)
    frames = clean.copy()
    extra: dict = {"direction": direction, "occluder_kind": None, "event_frames": (0, 0)}
    if rng.random() < occlusion_rate:
        run = max(1, int(round(rng.uniform(*occlusion_run) * n)))
        start = int(rng.integers(0, n - run + 1))
        ev = slice(start, start + run)
        kind = OCCLUDER_KINDS[rng.integers(len(OCCLUDER_KINDS))]
        u = np.linspace(0.0, 1.0, run)
        occ_labels = _rasterize(_occluder_parts(kind, rng, u, h, w, scale, phase[ev]), run, h, w)
        occ_pal = np.clip(_occluder_palette(kind, rng, identity) * gain, 0, 255).astype(np.uint8)
        mask = occ_labels > 0
        seen = np.where(mask[..., None], np.take(occ_pal, occ_labels, axis=0), composite[ev])
        np.copyto(frames[ev], _blur(seen, sigma), where=mask[..., None])
        occluder[ev] = mask
        overlap = np.count_nonzero(mask & silhouette[ev], axis=(1, 2))
        person_px = np.count_nonzero(silhouette[ev], axis=(1, 2))
        occluded[ev] = (overlap > 0) & (overlap >= OCCLUSION_MIN_FRACTION * person_px)
        extra.update(occluder_kind=kind, event_frames=(start, start + run))
    return RenderedTracklet(frames=frames, silhouette=silhouette, occluder=occluder,
                            clean=clean, occluded=occluded, extra=extra)
