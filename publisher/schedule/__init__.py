"""When it happens: wall-clock times, the scheduler's wake-ups, the jobs, and the daemon.

    timing.py     wall-clock times in the author's zone made exact (pure, `now` passed in)
    scheduler.py  APScheduler wiring: which job wakes up when
    jobs.py       what happens when the scheduler wakes up
    daemon.py     `publisher serve`: the HTTP app and the scheduler in one process
"""
