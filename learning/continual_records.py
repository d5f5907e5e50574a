"""Names shared by the clients, the server and the reply check for the continual methods
that talk to the server (FOT, TARGET)."""

from __future__ import annotations

from learning.generator import TARGET_SYNTHETIC
from learning.projection import FOT_BASIS, FOT_GRAM

# Records a server's train message may carry for a continual method.
SERVER_RECORDS = (FOT_BASIS, TARGET_SYNTHETIC)
# Extra records a client's reply may carry, per cl-method (checked byte for byte).
CLIENT_RECORDS = {"fot": (FOT_GRAM,)}
# Methods whose loss adds distillation (lwf-alpha, lwf-temperature).
KD_METHODS = ("lwf", "target")
