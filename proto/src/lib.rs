//! Wire definitions shared by the control plane and the load harness.
//!
//! `hyper.proto` (wire-compatible with the original Hyper) and `control.proto` (the proxy's
//! `ControlService`) land here with the Hyper server and proxy issues.
