"""The whole design session: a draft from concepts, then chained attribute edits (``hierafash design``)."""
