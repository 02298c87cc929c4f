"""Converters from other runtimes' model formats to PyTorch state dicts that spandrel recognises.

One module per source format (for example ``sr_methods.converters.ncnn``). Nothing is imported here,
so ``import sr_methods.converters`` stays cheap; import the module of the format you need.
"""
