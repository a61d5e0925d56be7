"""The library layer: one module per action of the seed's menu.

Each action takes typed inputs and returns a typed result; none prints.  The
interfaces (``cli``, ``menu``, ``demo``, the web page) render the results.
"""
