"""Steps `make install` runs after pip (not imported by the toolchain itself)."""
