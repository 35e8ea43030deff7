"""Citymini: a small, seeded, synthetic data set in the real Cityscapes layout.

Real Cityscapes is 11 GB behind a registration form, so tests, docs and CPU
smoke runs use this instead. It has the same folders, file names and polygon
JSON, and its label PNGs are rendered by cityscapesscripts, so every tool
that reads Cityscapes reads it unchanged. Each scene is a pinhole camera
looking down a straight street, so horizon, perspective and occlusion are
consistent and a small CNN learns them in minutes. Moving the same street
model forward in time gives the synthetic driving video.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
from cityscapesscripts.preparation.json2labelImg import json2labelImg
from PIL import Image, ImageDraw

from .cityscapes_prep import IMG_SUFFIX, POLYGON_SUFFIX, SPLITS
from ..utils.errors import InvalidArgument
from ..utils.files import atomic_output, atomic_write

#: Synthetic cities per split; as in the real set, val cities are not train
#: cities.
CITIES = {'train': ('minitown', 'pixelburg'), 'val': ('synthville', )}
#: Real Cityscapes annotates frame 19 of each 30-frame snippet.
ANNOTATED_FRAME = 19
LABEL_IDS_SUFFIX = '_gtFine_labelIds.png'
#: Written into every generated root; regenerating deletes old data only
#: where this marker is.
MARKER = 'citymini.json'
#: Written before the first scene and removed after the marker, so that an
#: interrupted run's partial output is recognised as citymini's own.
PARTIAL_MARKER = '.citymini-partial'
#: Seed stream of the video. Streams 0 and 1 are the train and val scenes.
VIDEO_STREAM = 2

CAMERA_HEIGHT = 1.5  # m above the road
CAMERA_SPEED = 8.0  # m/s along the street (video only)
NEAR, FAR = 0.5, 110.0  # m, the depth range props are drawn in
BEHIND = -40.0  # m, where props wrap around, out of sight behind the camera
PERIOD = FAR - BEHIND  # m, the street repeats, so the video can drive forever
GROUND_FAR = 1e4  # m, ground planes run out to the horizon

SKY = (120, 170, 220)
TERRAIN = (115, 145, 75)
ROAD = (85, 85, 90)
SIDEWALK = (160, 150, 150)
LANE_MARK = (220, 220, 210)
BUILDINGS = ((150, 140, 130), (180, 165, 140), (125, 110, 100), (165, 95, 75),
             (195, 190, 180))
WINDOW = (60, 70, 90)
VEGETATION = (65, 115, 45)
TRUNK = (95, 75, 55)
FENCES = ((150, 125, 95), (120, 120, 125))
POLE = (120, 120, 125)
HAZE_BUILDING = (150, 160, 175)
HAZE_TREE = (100, 125, 100)
SIGNS = {
    'round': ((200, 30, 35), (235, 235, 235)),
    'square': ((35, 75, 170), (235, 235, 235)),
    'diamond': ((230, 190, 40), (240, 240, 240))
}
LIGHT_HOUSING = (45, 45, 38)
LAMPS = ((230, 40, 30), (240, 170, 30), (40, 210, 90))
CLOTHES = ((40, 50, 90), (30, 30, 35), (150, 40, 50), (200, 200, 195),
           (90, 110, 60), (190, 140, 60), (100, 100, 110))
SKIN = ((225, 185, 155), (180, 130, 95), (110, 75, 55))
GLASS = (35, 40, 50)
TYRE = (25, 25, 28)
TAIL_LIGHT = (200, 25, 25)
HEAD_LIGHT = (235, 230, 190)
EGO_HOOD = (40, 42, 48)
#: Rear views: (label, width, body bottom, body top, roof, roof taper,
#: window band, paints), in metres.
VEHICLES = {
    'car': ('car', 1.8, 0.3, 1.0, 1.5, 0.75, (1.05, 1.42),
            ((170, 30, 35), (35, 55, 140), (215, 215, 220), (55, 55, 60),
             (150, 150, 160), (30, 95, 65))),
    'truck': ('truck', 2.4, 0.5, 3.4, 3.4, 1.0, None,
              ((225, 225, 225), (210, 130, 40))),
    'bus': ('bus', 2.5, 0.35, 3.1, 3.1, 1.0, (2.1, 2.9),
            ((230, 190, 40), (200, 45, 40))),
}
#: Texture per class: pixel grain and low-frequency blotches (grey levels).
GRAIN = {
    'vegetation': 14,
    'terrain': 10,
    'building': 6,
    'road': 5,
    'sidewalk': 6,
    'sky': 2
}
BLOTCH = {
    'vegetation': 22,
    'terrain': 16,
    'road': 7,
    'sidewalk': 8,
    'building': 8
}


class SceneObject(NamedTuple):
    """One polygon of a scene, in painting order, with how to colour it."""
    label: str  # a cityscapesscripts label name
    polygon: list  # [[x, y], ...] in integer pixels, inside the image
    colour: tuple  # base RGB
    shade: float = 0.0  # brightness change from image top to bottom


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at the road centre, looking along the street (+z)."""
    height: int
    width: int
    focal: float
    horizon: float
    centre_x: float

    def project(self, x, h, z):
        """Pixel of the world point x m to the right, h m up, z m ahead."""
        return (self.centre_x + self.focal * x / z,
                self.horizon + self.focal * (CAMERA_HEIGHT - h) / z)


@dataclass
class Prop:
    """Something in or along the street, drawn by ``*_DRAWERS[kind]``."""
    kind: str
    x: float  # m right of the road centre
    pos: float  # m along the street where it starts
    length: float = 0.0  # m along the street; 0 for upright things facing us
    speed: float = 0.0  # m/s along the street
    style: dict = field(default_factory=dict)

    def depth(self, t):
        """Depth of the prop's start at time t, wrapped into [BEHIND, FAR)."""
        travelled = (self.speed - CAMERA_SPEED) * t
        return (self.pos + travelled - BEHIND) % PERIOD + BEHIND


@dataclass
class Street:
    """Everything needed to draw one street at any time t."""
    camera: Camera
    road_half: float  # m from the road centre to the kerb
    sidewalk_outer: tuple  # m from the road centre, (left, right)
    colours: dict
    skyline: list  # (label, pixel polygon, colour) of the far city
    props: list
    hood: float  # ego-vehicle hood height in pixels, 0 for none


class _Painter:
    """Collects projected, clipped, integer polygons in painting order."""

    def __init__(self, camera):
        self.camera = camera
        self.objects = []

    def add_pixels(self, label, points, colour, shade=0.0):
        polygon = []
        for x, y in _clip_to_box(points, self.camera.width - 1,
                                 self.camera.height - 1):
            point = [int(round(x)), int(round(y))]
            if not polygon or point != polygon[-1]:
                polygon.append(point)
        if len(polygon) > 1 and polygon[0] == polygon[-1]:
            polygon.pop()
        if len(polygon) >= 3:
            self.objects.append(SceneObject(label, polygon, colour, shade))

    def add(self, label, world_points, colour, shade=0.0):
        """Add a polygon given by (x, h, z) world points."""
        self.add_pixels(label, [self.camera.project(*p) for p in world_points],
                        colour, shade)

    def facing(self, label, points, z, colour):
        """Add a polygon drawn on the upright plane at depth z, facing us."""
        self.add(label, [(x, h, z) for x, h in points], colour)


def _clip_to_box(points, x_max, y_max):
    """Clip a polygon to [0, x_max] x [0, y_max] (Sutherland-Hodgman)."""
    for axis, limit, below in ((0, 0, False), (0, x_max, True), (1, 0, False),
                               (1, y_max, True)):
        clipped = []
        for prev, cur in zip(points[-1:] + points[:-1], points):
            cur_in = cur[axis] <= limit if below else cur[axis] >= limit
            prev_in = prev[axis] <= limit if below else prev[axis] >= limit
            if cur_in != prev_in:
                f = (limit - prev[axis]) / (cur[axis] - prev[axis])
                clipped.append((prev[0] + f * (cur[0] - prev[0]),
                                prev[1] + f * (cur[1] - prev[1])))
            if cur_in:
                clipped.append(cur)
        points = clipped
    return points


def _rect(x0, x1, h0, h1):
    return [(x0, h0), (x1, h0), (x1, h1), (x0, h1)]


def _ellipse(xc, yc, rx, ry, radii=(1.0, ) * 14):
    angles = np.linspace(0, 2 * np.pi, len(radii), endpoint=False)
    return [(xc + rx * r * np.cos(a), yc + ry * r * np.sin(a))
            for a, r in zip(angles, radii)]


def _side(x, z0, z1, h0, h1):
    """Upright quad on the plane x = const, running along the street."""
    return [(x, h0, z0), (x, h1, z0), (x, h1, z1), (x, h0, z1)]


def _ground(x0, x1, z0, z1):
    return [(x0, 0, z0), (x1, 0, z0), (x1, 0, z1), (x0, 0, z1)]


def _jitter(rng, colour, spread=12):
    return tuple(
        np.clip(np.asarray(colour) + rng.uniform(-spread, spread, 3), 0, 255))


def _pick(rng, options):
    return options[rng.integers(len(options))]


# Drawers of props running along the street: (painter, prop, z, near, far),
# z being the unclipped start depth and [near, far] its visible stretch.


def _draw_building(p, prop, z, near, far):
    s, x = prop.style, prop.x
    if z >= NEAR:  # the block's front shows across the gap before it
        outward = x + np.sign(x) * 12
        p.add('building', [(x, 0, z), (x, s['height'], z),
                           (outward, s['height'], z), (outward, 0, z)],
              tuple(0.8 * c for c in s['colour']))
    p.add('building', _side(x, near, far, 0, s['height']), s['colour'])
    for floor in np.arange(0.8, s['height'] - 2.4, s['floor']):
        for start in z + np.arange(1.0, prop.length - 2.0, s['window_every']):
            w0, w1 = max(start, near), min(start + 1.4, far)
            if w1 > w0 and p.camera.focal * 1.4 / w0 >= 2:
                p.add('building', _side(x, w0, w1, floor + 0.9, floor + 2.3),
                      s['window'])


def _draw_fence_or_hedge(p, prop, z, near, far):
    s = prop.style
    p.add(s['label'], _side(prop.x, near, far, 0, s['height']), s['colour'])


def _draw_lane_mark(p, prop, z, near, far):
    p.add('road', _ground(prop.x - 0.08, prop.x + 0.08, near, far), LANE_MARK)


# Drawers of upright props facing the camera: (painter, prop, z).


def _draw_tree(p, prop, z):
    s, x = prop.style, prop.x
    p.facing('vegetation', _rect(x - 0.15, x + 0.15, 0, s['trunk']), z, TRUNK)
    p.facing(
        'vegetation',
        _ellipse(x, s['trunk'] + 0.6 * s['crown'], s['crown'], s['crown'],
                 s['radii']), z, s['colour'])


def _draw_lamp_post(p, prop, z):
    x, top, inward = prop.x, prop.style['height'], -np.sign(prop.x)
    p.facing('pole', _rect(x - 0.1, x + 0.1, 0, top), z, POLE)
    p.facing('pole', _rect(x, x + inward * 1.8, top - 0.15, top), z, POLE)
    p.facing('pole', _rect(x + inward * 1.5, x + inward * 1.9, top - 0.3, top),
             z, POLE)


def _draw_sign(p, prop, z):
    x, shape = prop.x, prop.style['shape']
    outer, inner = SIGNS[shape]
    centre = prop.style['height'] - 0.35
    p.facing('pole', _rect(x - 0.05, x + 0.05, 0, centre), z, POLE)
    if shape == 'round':  # a red ring around a white disc
        p.facing('traffic sign', _ellipse(x, centre, 0.35, 0.35), z, outer)
        p.facing('traffic sign', _ellipse(x, centre, 0.25, 0.25), z, inner)
    elif shape == 'diamond':  # a yellow diamond with a white border
        corners = (1.0, ) * 4
        p.facing('traffic sign', _ellipse(x, centre, 0.4, 0.4, corners), z,
                 inner)
        p.facing('traffic sign', _ellipse(x, centre, 0.33, 0.33, corners), z,
                 outer)
    else:  # a blue square with a white symbol
        p.facing('traffic sign',
                 _rect(x - 0.3, x + 0.3, centre - 0.3, centre + 0.3), z, outer)
        p.facing('traffic sign',
                 _rect(x - 0.08, x + 0.08, centre - 0.2, centre + 0.2), z,
                 inner)


def _draw_traffic_light(p, prop, z):
    x, lit = prop.x, prop.style['lit']
    p.facing('pole', _rect(x - 0.08, x + 0.08, 0, 3.2), z, POLE)
    p.facing('traffic light', _rect(x - 0.18, x + 0.18, 3.2, 4.1), z,
             LIGHT_HOUSING)
    for i, (height, colour) in enumerate(zip((3.95, 3.65, 3.35), LAMPS)):
        lamp = colour if i == lit else tuple(0.3 * c for c in colour)
        p.facing('traffic light', _ellipse(x, height, 0.1, 0.1), z, lamp)


def _draw_person(p, prop, z, label='person', base=0.0):
    s, x, h = prop.style, prop.x, prop.style['tall']
    for leg in (-1, 1):
        p.facing(label,
                 _rect(x + leg * 0.03, x + leg * 0.17, base, base + 0.48 * h),
                 z, s['legs'])
    p.facing(label, _rect(x - 0.22, x + 0.22, base + 0.45 * h,
                          base + 0.82 * h), z, s['top'])
    p.facing(label, _ellipse(x, base + 0.89 * h, 0.065 * h, 0.075 * h), z,
             s['skin'])


def _draw_cyclist(p, prop, z):
    x = prop.x
    p.facing('bicycle', _rect(x - 0.03, x + 0.03, 0, 0.68), z, TYRE)
    _draw_person(p, prop, z, label='rider', base=0.45)
    p.facing('bicycle', _rect(x - 0.32, x + 0.32, 1.0, 1.05), z, TYRE)


def _draw_vehicle(p, prop, z):
    s, x = prop.style, prop.x
    label, width, bottom, body_top, roof, taper, window, _ = \
        VEHICLES[s['type']]
    half = width / 2
    p.facing(label, _rect(x - half + 0.1, x + half - 0.1, 0.05, bottom), z,
             TYRE)
    for side in (-1, 1):
        wheel = x + side * (half - 0.25)
        p.facing(label, _rect(wheel - 0.15, wheel + 0.15, 0, bottom + 0.2), z,
                 TYRE)
    p.facing(label, _rect(x - half, x + half, bottom, body_top), z, s['paint'])
    if roof > body_top:
        p.facing(label, [(x - 0.95 * half, body_top),
                         (x + 0.95 * half, body_top), (x + taper * half, roof),
                         (x - taper * half, roof)], z, s['paint'])
    if window:
        inset = 0.85 * half if roof > body_top else 0.92 * half
        p.facing(label, _rect(x - inset, x + inset, *window), z, GLASS)
    for side in (-1, 1):
        lamp = x + side * (half - 0.2)
        p.facing(label,
                 _rect(lamp - 0.12, lamp + 0.12, bottom + 0.4, bottom + 0.55),
                 z, s['lights'])


STRIP_DRAWERS = {
    'building': _draw_building,
    'fence_or_hedge': _draw_fence_or_hedge,
    'lane_mark': _draw_lane_mark
}
UPRIGHT_DRAWERS = {
    'tree': _draw_tree,
    'lamp_post': _draw_lamp_post,
    'sign': _draw_sign,
    'traffic_light': _draw_traffic_light,
    'person': _draw_person,
    'cyclist': _draw_cyclist,
    'vehicle': _draw_vehicle
}


def _tree(rng, x, pos):
    return Prop(
        'tree',
        x,
        pos,
        style=dict(
            trunk=rng.uniform(1.8, 3.0),
            crown=rng.uniform(1.3, 2.8),
            radii=rng.uniform(0.75, 1.15, 14),
            colour=_jitter(rng, VEGETATION)))


def _pedestrian_style(rng):
    return dict(
        tall=rng.uniform(1.55, 1.9),
        legs=_pick(rng, CLOTHES),
        top=_jitter(rng, _pick(rng, CLOTHES), 20),
        skin=_pick(rng, SKIN))


def _vehicle(rng, x, pos, speed, oncoming):
    kind = _pick(rng, ('car', ) * 8 + ('truck', 'bus'))
    return Prop(
        'vehicle',
        x,
        pos,
        speed=speed,
        style=dict(
            type=kind,
            paint=_jitter(rng, _pick(rng, VEHICLES[kind][-1]), 10),
            lights=HEAD_LIGHT if oncoming else TAIL_LIGHT))


def _slots(rng, count, spacing):
    """count distinct positions along the street, spacing m apart or more."""
    slots = rng.choice(int(PERIOD // spacing), size=count, replace=False)
    return slots * spacing + rng.uniform(0, 0.5, count)


def _sample_side(rng, side, kerb, sidewalk_outer, facade):
    """Buildings, gaps, street furniture and people along one side."""
    props, pos = [], 0.0
    while pos < PERIOD - 1:
        length = min(rng.uniform(8, 30), PERIOD - pos)
        # A quarter of the lots are gaps: a hedge or fence, with trees.
        if rng.random() < 0.25:
            label, colour = _pick(rng, (('vegetation', VEGETATION),
                                        ('fence', _pick(rng, FENCES))))
            props.append(
                Prop(
                    'fence_or_hedge',
                    side * (facade - 0.2),
                    pos,
                    length,
                    style=dict(
                        label=label,
                        height=rng.uniform(1.0, 2.2),
                        colour=_jitter(rng, colour))))
            props += [
                _tree(rng, side * (facade - 1.5), pos + offset)
                for offset in rng.uniform(0, length, rng.integers(1, 3))
            ]
        else:
            props.append(
                Prop(
                    'building',
                    side * facade,
                    pos,
                    length,
                    style=dict(
                        height=rng.uniform(7, 22),
                        floor=rng.uniform(2.8, 3.6),
                        window_every=rng.uniform(2.5, 4.5),
                        colour=_jitter(rng, _pick(rng, BUILDINGS)),
                        window=_jitter(rng, WINDOW, 10))))
        pos += length
    if rng.random() < 0.5:  # a row of street trees
        spacing = rng.uniform(10, 16)
        props += [
            _tree(rng, side * (sidewalk_outer - 0.6), pos)
            for pos in np.arange(rng.uniform(0, spacing), PERIOD, spacing)
        ]
    spacing = rng.uniform(20, 35)
    props += [
        Prop(
            'lamp_post',
            side * (kerb + 0.4),
            pos,
            style=dict(height=rng.uniform(6, 8)))
        for pos in np.arange(rng.uniform(0, spacing), PERIOD, spacing)
    ]
    props += [
        Prop(
            'sign',
            side * (kerb + 0.5),
            pos,
            style=dict(
                shape=_pick(rng, tuple(SIGNS)), height=rng.uniform(2.4, 3.0)))
        for pos in rng.uniform(0, PERIOD, rng.integers(1, 4))
    ]
    props += [
        Prop(
            'traffic_light',
            side * (kerb + 0.5),
            pos,
            style=dict(lit=rng.integers(3)))
        for pos in rng.uniform(0, PERIOD, rng.integers(0, 3))
    ]
    props += [
        Prop(
            'person',
            side * rng.uniform(kerb + 0.6, sidewalk_outer - 0.4),
            pos,
            speed=rng.uniform(-1.4, 1.4),
            style=_pedestrian_style(rng))
        for pos in rng.uniform(0, PERIOD, rng.poisson(5))
    ]
    return props


def _sample_traffic(rng, road_half):
    """Parked cars on wide roads, one moving lane each way, maybe a cyclist."""
    props = []
    parking = road_half >= 5.7
    lane = (road_half - 2.2 * parking) / 2
    if parking:
        for side in (-1, 1):
            props += [
                _vehicle(
                    rng, side * (road_half - 1.1), pos, 0.0, oncoming=side < 0)
                for pos in _slots(rng, rng.integers(1, 7), 6.0)
            ]
    oncoming_speed = -rng.uniform(6, 12)
    props += [
        _vehicle(rng, -lane, pos, oncoming_speed, oncoming=True)
        for pos in _slots(rng, rng.integers(1, 5), 15.0)
    ]
    if rng.random() < 0.3:
        props.append(
            Prop(
                'cyclist',
                lane,
                rng.uniform(0, PERIOD),
                speed=rng.uniform(4, 6),
                style=_pedestrian_style(rng)))
    else:
        speed = rng.uniform(9, 13)
        props += [
            _vehicle(rng, lane, pos, speed, oncoming=False)
            for pos in _slots(rng, rng.integers(1, 5), 15.0)
        ]
    return props


def _sample_skyline(rng, camera):
    """Distant buildings and trees along the horizon, fixed in the image."""
    scale, base = camera.height / 256, camera.horizon + 2
    roofline, x = [(0, base)], 0.0
    while x < camera.width - 1:
        top = camera.horizon - scale * rng.uniform(2, 22)
        next_x = min(x + scale * rng.uniform(8, 40), camera.width - 1)
        roofline += [(x, top), (next_x, top)]
        x = next_x
    roofline.append((camera.width - 1, base))
    trees = [
        _ellipse(
            rng.uniform(0, camera.width), camera.horizon,
            scale * rng.uniform(8, 25), scale * rng.uniform(4, 12),
            rng.uniform(0.8, 1.1, 16)) for _ in range(rng.integers(2, 6))
    ]
    return ([('building', roofline, _jitter(rng, HAZE_BUILDING, 8))] +
            [('vegetation', tree, _jitter(rng, HAZE_TREE, 8))
             for tree in trees])


def sample_street(rng, height=256, width=512):
    """Draw a random street: camera, road cross-section, props and colours."""
    camera = Camera(
        height,
        width,
        focal=width * rng.uniform(0.55, 0.75),
        horizon=height * rng.uniform(0.36, 0.48),
        centre_x=width * rng.uniform(0.44, 0.56))
    road_half = rng.uniform(3.5, 8.5)
    sidewalk_outer, props = [], []
    for side in (-1, 1):
        outer = road_half + rng.uniform(1.5, 3.5)
        verge = rng.uniform(0.5, 4) if rng.random() < 0.5 else 0.0
        sidewalk_outer.append(outer)
        props += _sample_side(rng, side, road_half, outer, outer + verge)
    props += _sample_traffic(rng, road_half)
    props += [
        Prop('lane_mark', 0.0, pos, 3.0) for pos in np.arange(0, PERIOD, 7.5)
    ]
    colours = dict(
        sky=_jitter(rng, SKY, 15),
        terrain=_jitter(rng, TERRAIN),
        road=_jitter(rng, ROAD, 8),
        sidewalk=_jitter(rng, SIDEWALK))
    hood = height * rng.uniform(0.06, 0.1) if rng.random() < 0.5 else 0.0
    return Street(camera, road_half, tuple(sidewalk_outer), colours,
                  _sample_skyline(rng, camera), props, hood)


def street_objects(street, t=0.0):
    """The street seen at time t (s): scene polygons, back to front."""
    cam, colours = street.camera, street.colours
    right, bottom = cam.width - 1, cam.height - 1
    p = _Painter(cam)
    p.add_pixels('sky', _rect(0, right, 0, bottom), colours['sky'], shade=0.5)
    for label, polygon, colour in street.skyline:
        p.add_pixels(label, polygon, colour)
    p.add_pixels('terrain', _rect(0, right, cam.horizon, bottom),
                 colours['terrain'])
    left_walk, right_walk = street.sidewalk_outer
    p.add('sidewalk', _ground(-left_walk, -street.road_half, NEAR, GROUND_FAR),
          colours['sidewalk'])
    p.add('sidewalk', _ground(street.road_half, right_walk, NEAR, GROUND_FAR),
          colours['sidewalk'])
    p.add('road', _ground(-street.road_half, street.road_half, NEAR,
                          GROUND_FAR), colours['road'])
    strips, uprights = [], []
    for prop in street.props:
        z = prop.depth(t)
        if prop.kind in STRIP_DRAWERS:
            near, far = max(z, NEAR), min(z + prop.length, FAR)
            if near < far:
                strips.append((near, z, far, prop))
        elif NEAR < z < FAR:
            uprights.append((z, prop))
    # Lane marks lie on the road, so they go under everything standing on it.
    strips.sort(key=lambda s: (s[3].kind != 'lane_mark', -s[0]))
    for near, z, far, prop in strips:
        STRIP_DRAWERS[prop.kind](p, prop, z, near, far)
    for z, prop in sorted(uprights, key=lambda u: -u[0]):
        UPRIGHT_DRAWERS[prop.kind](p, prop, z)
    if street.hood:  # our own bonnet, ignored in training like in Cityscapes
        rise = street.hood * np.array([0, 0.6, 0.95, 1, 0.95, 0.6, 0])
        hood = zip(
            np.array([0, 0, 0.25, 0.5, 0.75, 1, 1]) * right, bottom - rise)
        p.add_pixels('ego vehicle', list(hood), EGO_HOOD)
    return p.objects


def render_scene(objects, height, width, rng):
    """Paint the polygons in order, as cityscapesscripts draws labels.

    Returns the RGB image and the per-pixel index of the object seen there
    (1-based, 0 where none), so the image and its labels agree pixel for pixel.
    """
    index_image = Image.new('I', (width, height), 0)
    draw = ImageDraw.Draw(index_image)
    for i, obj in enumerate(objects, 1):
        draw.polygon([tuple(point) for point in obj.polygon], fill=i)
    index = np.asarray(index_image)

    def per_pixel(values):
        return np.asarray([0] + list(values), np.float32)[index]

    colour = np.asarray([(0, 0, 0)] + [o.colour for o in objects],
                        np.float32)[index]
    grain = per_pixel(GRAIN.get(o.label, 4) for o in objects)
    blotch = per_pixel(BLOTCH.get(o.label, 0) for o in objects)
    light = 1 + per_pixel(o.shade for o in objects) * np.linspace(
        -0.5, 0.5, height, dtype=np.float32)[:, None]
    coarse = cv2.resize(
        rng.standard_normal((max(2, height // 8), max(2, width // 8)),
                            np.float32), (width, height),
        interpolation=cv2.INTER_CUBIC)
    texture = grain * rng.standard_normal((height, width), np.float32) + \
        blotch * coarse
    image = colour * light[..., None] + texture[..., None] + \
        1.5 * rng.standard_normal((height, width, 3), np.float32)
    image = cv2.GaussianBlur(image, (3, 3), 0.6)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), index


def annotation_json(objects, height, width):
    """The scene as a Cityscapes ``*_gtFine_polygons.json`` document."""
    return {
        'imgHeight': height,
        'imgWidth': width,
        'objects': [{
            'label': o.label,
            'polygon': o.polygon
        } for o in objects]
    }


def _clear_previous(root):
    """Remove an earlier citymini in root, complete or interrupted, and
    mark root as being written; refuse to touch anything else."""
    data_dirs = [osp.join(root, name) for name in ('leftImg8bit', 'gtFine')]
    ours = any(osp.isfile(osp.join(root, name))
               for name in (MARKER, PARTIAL_MARKER))
    if not ours and any(osp.exists(path) for path in data_dirs):
        raise FileExistsError(
            f'{root} already holds leftImg8bit/ or gtFine/ that citymini did '
            'not write; refusing to overwrite it, choose another output folder'
        )
    os.makedirs(root, exist_ok=True)
    atomic_write('', osp.join(root, PARTIAL_MARKER), mode='w')
    for path in data_dirs:
        shutil.rmtree(path, ignore_errors=True)
    for name in (*(f'{split}.txt' for split in SPLITS), MARKER):
        if osp.isfile(osp.join(root, name)):
            os.remove(osp.join(root, name))


def _write_scene(root, split, city, stem, street, rng):
    cam = street.camera
    objects = street_objects(street)
    image, _ = render_scene(objects, cam.height, cam.width, rng)
    image_dir = osp.join(root, 'leftImg8bit', split, city)
    gt_dir = osp.join(root, 'gtFine', split, city)
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    Image.fromarray(image).save(osp.join(image_dir, stem + IMG_SUFFIX))
    json_path = osp.join(gt_dir, stem + POLYGON_SUFFIX)
    with open(json_path, 'w') as f:
        json.dump(annotation_json(objects, cam.height, cam.width), f, indent=4)
    json2labelImg(json_path, osp.join(gt_dir, stem + LABEL_IDS_SUFFIX), 'ids')
    return {o.label for o in objects}


def generate_citymini(root='data/citymini',
                      num_train=24,
                      num_val=8,
                      height=256,
                      width=512,
                      seed=0):
    """Write a citymini set under root; equal arguments give equal bytes.

    Scene i of a split depends only on (seed, split, i), so changing the
    number of scenes keeps the existing ones. Returns a summary dict, also
    saved as ``root/citymini.json``.
    """
    if num_train < 1 or num_val < 0 or height < 32 or width < 64:
        raise InvalidArgument('citymini needs num_train >= 1, num_val >= 0, '
                         'height >= 32 and width >= 64')
    _clear_previous(root)
    summary = dict(height=height, width=width, seed=seed, splits={})
    labels = set()
    for stream, (split, count) in enumerate((('train', num_train),
                                             ('val', num_val))):
        cities = CITIES[split]
        city_indices = np.array_split(np.arange(count), len(cities))
        stems = []
        for city, indices in zip(cities, city_indices):
            for seq, index in enumerate(indices):
                stem = f'{city}_{seq:06d}_{ANNOTATED_FRAME:06d}'
                rng = np.random.default_rng([seed, stream, int(index)])
                street = sample_street(rng, height, width)
                labels |= _write_scene(root, split, city, stem, street, rng)
                stems.append(f'{city}/{stem}')
        summary['splits'][split] = stems
    summary['labels'] = sorted(labels)
    atomic_write(json.dumps(summary, indent=2), osp.join(root, MARKER),
                 mode='w')
    os.remove(osp.join(root, PARTIAL_MARKER))
    return summary


#: File names OpenCV writes a video to (mp4v, or MJPG for .avi).
VIDEO_SUFFIXES = ('.mp4', '.avi')


def _video_target(path, fps, size):
    """``(fourcc, path)``: mp4v at ``path`` where OpenCV can write it, else
    MJPG at the ``.avi`` next to it (tried on a scratch file)."""
    avi_path = osp.splitext(path)[0] + '.avi'
    with tempfile.TemporaryDirectory() as scratch:
        for fourcc, target in (('mp4v', path), ('MJPG', avi_path)):
            probe = cv2.VideoWriter(
                osp.join(scratch, 'probe' + osp.splitext(target)[1]),
                cv2.VideoWriter_fourcc(*fourcc), fps, size)
            opened = probe.isOpened()
            probe.release()
            if opened:
                return fourcc, target
    raise RuntimeError(
        f'OpenCV can write neither mp4v nor MJPG video to {path}')


def make_driving_video(path,
                       num_frames=150,
                       fps=15.0,
                       size=(512, 256),
                       seed=0):
    """Write a synthetic drive down a citymini street; return the file path.

    size is (width, height), as OpenCV takes it. The camera moves forward at
    CAMERA_SPEED while traffic and pedestrians move on their own. When
    mp4v is unavailable the video falls back to a MJPG ``.avi`` next to path.
    The file appears only once complete (an interrupted run leaves none).
    """
    if osp.splitext(path)[1].lower() not in VIDEO_SUFFIXES:
        raise InvalidArgument(f'cannot write a video to {path}: give a file '
                              f'name ending in {" or ".join(VIDEO_SUFFIXES)}')
    width, height = size
    rng = np.random.default_rng([seed, VIDEO_STREAM])
    street = sample_street(rng, height, width)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fourcc, path = _video_target(path, fps, (width, height))
    with atomic_output(path) as tmp_path:
        writer = cv2.VideoWriter(tmp_path, cv2.VideoWriter_fourcc(*fourcc),
                                 fps, (width, height))
        try:
            for frame in range(num_frames):
                image, _ = render_scene(
                    street_objects(street, frame / fps), height, width, rng)
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return path
