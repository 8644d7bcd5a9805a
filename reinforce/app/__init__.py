"""The application: run folders, training sessions, evaluation of runs, the Hub, replay videos
and the command line. It uses the backends through their contract (``reinforce.backend``) and
the registry in :mod:`reinforce.app.backends`."""
