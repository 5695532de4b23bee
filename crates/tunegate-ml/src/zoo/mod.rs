//! Model zoos for the scans' proofs: tiny models trained with tunegate's own trainer, clean and
//! with planted behaviour (backdoors, off-objective changes, safety regressions), written to
//! folders exactly as users' models are, so the scans are tested on what they will meet.
pub mod causal;
