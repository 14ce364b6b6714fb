
pub mod canvas_sim;
pub mod event_sources;
pub mod moto;
pub mod provision;
pub mod repo;
pub mod template;
pub mod functions;
pub mod stack;
