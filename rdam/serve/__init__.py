"""The web demo and HTTP API (FastAPI): ``create_app(predictor)``; ``rdam serve`` runs it."""

from rdam.serve.app import PredictResponse, create_app

__all__ = ["PredictResponse", "create_app"]
