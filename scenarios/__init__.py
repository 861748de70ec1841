from telephony import native

# The simulator is compiled with the routing core when built from this source; see telephony/native.py.
__path__ = native.prefer_compiled(__name__, __path__)
