//! kregress-agent: the guest side. The library holds the wire protocol shared with the runner.
