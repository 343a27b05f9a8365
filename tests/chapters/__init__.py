"""Tests of the chapter modules (koopman_repro.chapters); a package, so that their basenames may
repeat those of the experiment tests in tests/ (test_perceptron.py, ...)."""
