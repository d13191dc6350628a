//! Steps "validate" and "desired": check what the CRD schema cannot, then build the connection
//! Foundry should hold ([`super::build`], pure). A spec that cannot work is Stalled `InvalidSpec`.

use foundry_gateway_api::conditions::reasons;

use super::build::{self, Desired, InvalidSpec};
use super::resolve::Resolved;
use super::start::Start;
use crate::controller::{AtStep, Failed, Step};
use crate::digest::DigestKey;
use crate::failure::Failure;
use crate::ownership::ObjectId;

/// The connection as it should be in Foundry, its credentials digest keyed by `key`.
pub fn desired(start: &Start<'_>, resolved: &Resolved, key: &DigestKey) -> Result<Desired, Failed> {
    let spec = &start.gc.spec;
    build::validate(spec, &start.key.name)
        .map_err(invalid)
        .at(Step::Validate)?;
    let me = ObjectId::new(&start.key.namespace, &start.key.name, Some(&start.uid));
    build::build_for(spec, &me, &resolved.secrets, key)
        .map_err(invalid)
        .at(Step::Desired)
}

fn invalid(error: InvalidSpec) -> Failure {
    Failure::permanent(reasons::INVALID_SPEC, error.0)
}
