pub mod gopclntab;
