"""MQL Engine: explainable Marketing Qualified Leads as code."""

__version__ = "0.1.0"
