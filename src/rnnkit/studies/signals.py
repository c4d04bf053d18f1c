"""What each kind of recurrent cell exposes per step, by name (no torch: `rnnkit serve` lists
them for a NumPy-engine model without importing it; recurrence.py computes them)."""

# what each kind of cell exposes per step; the gates are the ones Karpathy et al. (2015) measure
SIGNALS = {"lstm": ("h", "c", "i", "f", "o"), "gru": ("h", "z", "r"), "rnn": ("h",), "rnn_relu": ("h",)}
GATES = {"lstm": ("i", "f", "o"), "gru": ("z", "r"), "rnn": (), "rnn_relu": ()}
SIGNAL_NAMES = {
    "h": "hidden state",
    "c": "cell state",
    "i": "input gate",
    "f": "forget gate",
    "o": "output gate",
    "z": "update gate",
    "r": "reset gate",
}
