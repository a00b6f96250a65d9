"""Experiment and holdout results of one journey: conversion per variant with intervals."""

from __future__ import annotations

from fastapi import APIRouter

from ..auth import AdminDep

router = APIRouter(prefix="/api/journeys", tags=["experiments"], dependencies=[AdminDep])
