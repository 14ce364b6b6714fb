pub mod canvas_sim;
pub mod event_sources;
pub mod functions;
pub mod moto;
pub mod provision;
pub mod repo;
pub mod stack;
pub mod template;
