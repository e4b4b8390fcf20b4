//! (being written)

use kregress_agent::WorkloadSpec;

use super::{Failure, Finished, Target};

pub fn fixed(spec: &WorkloadSpec, _t: &Target) -> Result<Finished, Failure> {
    Ok(Finished::skip(format!("{}: not implemented yet", spec.name())))
}

pub fn dio(spec: &WorkloadSpec, _t: &Target) -> Result<Finished, Failure> {
    Ok(Finished::skip(format!("{}: not implemented yet", spec.name())))
}

