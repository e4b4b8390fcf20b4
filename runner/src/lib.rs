//! kregress: builds Linux kernels with and without a fix, boots each in QEMU
//! with emulated persistent memory, runs DAX + O_DIRECT workloads that pin
//! ZONE_DEVICE pages through GUP, and compares what happened.
pub mod image;
