"""placeholder"""
def attention_primfunc(cfg, limits):
    raise NotImplementedError("not yet")
