"""The runner, the worker loop, and the scripted scheduler of tests."""
