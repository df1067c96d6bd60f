"""Database: engine/sessions, tables, column types and migrations."""
