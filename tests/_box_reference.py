"""The reference of the box IoU losses: torchvision.ops' published formulas
(generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss and their shared
intersection/union), written with torch ops so that torch.autograd differentiates them as it
differentiates torchvision's. Used by tests/test_detection.py and, as the torch side of the
benchmark, by bench/cases_detection.py.
"""

from __future__ import annotations

import math

import torch


def _inter_union(b1, b2):
    x1, y1, x2, y2 = b1.unbind(-1)
    u1, v1, u2, v2 = b2.unbind(-1)
    lo_x, lo_y = torch.max(x1, u1), torch.max(y1, v1)
    hi_x, hi_y = torch.min(x2, u2), torch.min(y2, v2)
    overlap = (hi_x > lo_x) & (hi_y > lo_y)
    inter = torch.zeros_like(x1)
    # torchvision assigns the product only where the boxes overlap: no gradient elsewhere
    inter[overlap] = (hi_x[overlap] - lo_x[overlap]) * (hi_y[overlap] - lo_y[overlap])
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    return inter, union


def _enclosing_sides(b1, b2):
    x1, y1, x2, y2 = b1.unbind(-1)
    u1, v1, u2, v2 = b2.unbind(-1)
    return torch.max(x2, u2) - torch.min(x1, u1), torch.max(y2, v2) - torch.min(y1, v1)


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    return loss.sum() if reduction == "sum" else loss


def ref_giou(b1, b2, reduction="none", eps=1e-7):
    inter, union = _inter_union(b1, b2)
    iou = inter / (union + eps)
    cw, ch = _enclosing_sides(b1, b2)
    area_c = cw * ch
    return _reduce(1 - (iou - (area_c - union) / (area_c + eps)), reduction)


def _diou(b1, b2, eps):
    inter, union = _inter_union(b1, b2)
    iou = inter / (union + eps)
    cw, ch = _enclosing_sides(b1, b2)
    diag = cw**2 + ch**2 + eps
    x1, y1, x2, y2 = b1.unbind(-1)
    u1, v1, u2, v2 = b2.unbind(-1)
    dist = ((x2 + x1) / 2 - (u1 + u2) / 2) ** 2 + ((y2 + y1) / 2 - (v1 + v2) / 2) ** 2
    return 1 - iou + dist / diag, iou


def ref_diou(b1, b2, reduction="none", eps=1e-7):
    return _reduce(_diou(b1, b2, eps)[0], reduction)


def ref_ciou(b1, b2, reduction="none", eps=1e-7):
    diou, iou = _diou(b1, b2, eps)
    x1, y1, x2, y2 = b1.unbind(-1)
    u1, v1, u2, v2 = b2.unbind(-1)
    v = (4 / math.pi**2) * torch.pow(torch.atan((u2 - u1) / (v2 - v1)) - torch.atan((x2 - x1) / (y2 - y1)), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce(diou + alpha * v, reduction)


REFS = {"generalized_box_iou_loss": ref_giou, "distance_box_iou_loss": ref_diou, "complete_box_iou_loss": ref_ciou}
