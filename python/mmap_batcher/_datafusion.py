"""The JSON functions of SQL over JSON Lines, for a datafusion-python ``SessionContext``."""

from __future__ import annotations

from typing import Any

from ._native import json_functions


def register_json_functions(ctx: Any) -> None:
    """Register ``json_get_str``, ``json_get_int``, ``json_get_float``, ``json_get_bool``,
    ``json_get_json``, ``json_as_text`` and ``json_contains`` on ``ctx`` (a
    ``datafusion.SessionContext``): the functions the CLI's ``sql`` has, over the same
    walk as ``field=``. The operators ``->`` and ``->>`` are the CLI's and Rust's
    only: datafusion-python registers no planner of another library's."""
    from datafusion import ScalarUDF

    for f in json_functions():
        ctx.register_udf(ScalarUDF.from_pycapsule(f))
