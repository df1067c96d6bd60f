"""The Reflex app package (``app_name="app"``: Reflex imports ``app.app``)."""
