"""Computing apart from showing: every sampler the app starts runs here, a step at a time and
round robin, on one thread per core, so that the cores never sleep while there is work and
every request advances at once, a fair share each. What a viewer sees is paced apart
(`shown`), at no cost to the cores.

    engine = Engine(workers=2)
    job = engine.submit(generator)     # each next() of it is a step: a picture, say
    async for value in shown(job, 0.08):  # its latest value, at most one every 0.08 s, and its last
        ...

A job's generator is advanced by one worker at a time, never two, so it draws exactly what
it would draw alone. Cancelling a job (Stop, a closed tab) closes its generator before its
next step. No gradio here: app.py streams `shown` to the page.
"""
import asyncio
import threading
from collections import deque


class Job:
    """A generator run by the engine: its latest value and how many it has given, whether it
    has ended, and the exception it ended with, if any."""

    def __init__(self, steps):
        self.steps = steps
        self.latest, self.count = None, 0
        self.ended, self.error = False, None
        self.cancelled = False

    def cancel(self):
        """Stop at the next step: the generator is closed there, by the engine."""
        self.cancelled = True


class Engine:
    """Runs jobs a step at a time, round robin, on `workers` threads (daemons, started at once)."""

    def __init__(self, workers=2):
        self.ready = deque()  # jobs waiting for their next step
        self.wake = threading.Condition()
        self.threads = [threading.Thread(target=self.work, name=f"engine-{k}", daemon=True) for k in range(workers)]
        for t in self.threads:
            t.start()

    def submit(self, steps):
        job = Job(steps)
        with self.wake:
            self.ready.append(job)
            self.wake.notify()
        return job

    def busy(self):
        """Jobs waiting for a step (those being stepped now not counted)."""
        return len(self.ready)

    def work(self):
        while True:
            with self.wake:
                while not self.ready:
                    self.wake.wait()
                job = self.ready.popleft()
            if self.step(job):
                with self.wake:
                    self.ready.append(job)
                    self.wake.notify()

    @staticmethod
    def step(job):
        """Advance `job` once; whether it has steps left."""
        try:
            if job.cancelled:
                job.steps.close()
                raise StopIteration
            job.latest = next(job.steps)
            job.count += 1
            return True
        except StopIteration:
            pass
        except Exception as e:  # noqa: BLE001  the job's own failure, raised to whoever shows it
            job.error = e.with_traceback(e.__traceback__.tb_next)  # not this frame, which holds the job
        job.ended = True
        return False


async def shown(job, seconds, first=0.01):
    """The values of `job` as a viewer sees them: the latest at most one every `seconds` (looking
    every `first` seconds until there is one), then its last; its error is raised here. Leaving
    early (the viewer gone) cancels the job."""
    seen = 0
    try:
        while True:
            ended = job.ended  # read before the values, so that the last one is never missed
            if job.count != seen:
                seen = job.count
                yield job.latest
            if ended:
                break
            await asyncio.sleep(seconds if seen else first)
        if job.error is not None:
            raise job.error
    finally:
        job.cancel()


def once(f, *args, **kwargs):
    """f(*args, **kwargs) as a job of one step."""
    yield f(*args, **kwargs)
