"""Which of a model's arrays are its head and which are batch norm: one rule for every
model, built-in or a user's plug-in (docs/personalised.md, docs/extending.md).

- **head**: every layer whose name starts with `head` (e.g. `Dense(10, name="head")`);
  a model with no such layer has its last layer with weights as its head (the
  classifier, as FedPer/FedRep use it on the built-in models);
- **batch norm**: every `keras.layers.BatchNormalization` layer (its gamma, beta and
  moving mean/variance), whatever it is called.

Roles are listed per array of `model.get_weights()` (what messages carry), and, for the
trainer, per trainable variable. Nested models are looked through to their leaf layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from learning.errors import ConfigError

HEAD_PREFIX = "head"


@dataclass(frozen=True)
class LayerRoles:
    """Per array of `model.get_weights()`: is it head, is it batch norm; and for each
    trainable variable its position in that list."""

    head: tuple[bool, ...]
    bn: tuple[bool, ...]
    trainable: tuple[int, ...]

    def mask(self, kind: str) -> tuple[bool, ...]:
        """The personal arrays of a method's kind: "head", "bn" or "all"."""
        if kind == "all":
            return (True,) * len(self.head)
        return self.head if kind == "head" else self.bn


def _leaves(layer) -> list:
    inner = getattr(layer, "layers", None)
    if not inner:
        return [layer]
    return [leaf for sub in inner for leaf in _leaves(sub)]


def layer_roles(model) -> LayerRoles:
    """The roles of `model`'s arrays under the rule above."""
    import keras

    leaves = [leaf for leaf in _leaves(model) if leaf.weights]
    named = [leaf for leaf in leaves if leaf.name.startswith(HEAD_PREFIX)]
    heads = {id(leaf) for leaf in (named or leaves[-1:])}
    role: dict[int, tuple[bool, bool]] = {}
    for leaf in leaves:
        bn = isinstance(leaf, keras.layers.BatchNormalization)
        for v in leaf.weights:
            role.setdefault(id(v), (id(leaf) in heads, bn))
    weights = list(model.weights)
    pos = {id(v): i for i, v in enumerate(weights)}
    pairs = [role.get(id(v), (False, False)) for v in weights]
    return LayerRoles(
        head=tuple(h for h, _ in pairs),
        bn=tuple(b for _, b in pairs),
        trainable=tuple(pos[id(v)] for v in model.trainable_variables),
    )


def check_personal_model(strategy: str, model, name: str) -> None:
    """One line where a personalised method cannot mean what it says on this model:
    FedBN needs batch-norm layers to keep; FedRep's frozen body and APFL's mixing are
    gradient steps, which a batch-norm layer's moving statistics do not take (they would
    move while "frozen", or be extrapolated by APFL's unmixing)."""
    bn = any(layer_roles(model).bn)
    if strategy == "fedbn" and not bn:
        raise ConfigError(
            f"strategy 'fedbn' keeps batch-norm layers local, but model {name!r} has none; "
            'use model = "cnn-bn" or a model with keras.layers.BatchNormalization'
        )
    if strategy in ("fedrep", "apfl") and bn:
        raise ConfigError(
            f"strategy {strategy!r} with a batch-norm model ({name!r}): its moving "
            "statistics are not gradient steps, so they would not stay frozen (fedrep) or "
            "mix as the method assumes (apfl); use a model without batch norm, or fedbn"
        )
