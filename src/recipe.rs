//! Recipes: parse and validate recipe.toml into a typed value; no syscalls.
