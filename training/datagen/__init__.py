"""The bundled dataset generator behind ``mmrt data make`` (DESIGN.md section 2)."""
