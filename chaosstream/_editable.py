"""Marker installed beside editable installs so `chaos discover` maps the distribution to `chaosstream`.

Never imported: see hatch_build.py.
"""
