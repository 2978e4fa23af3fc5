"""The protocol's vocabulary (PROTOCOL.md), pure: no Django import, usable from a notebook."""
