"""Computing apart from showing: every sampler the app starts runs here, a step at a time and
round robin, on one thread per core, so that the cores never sleep while there is work and
every request advances at once, a fair share each. What a viewer sees is paced apart
(`Engine.shown`), within a budget of pictures a second for all viewers together.

    engine = Engine(workers=2, shows=25)
    job = engine.submit(generator)     # each next() of it is a step: a picture, say
    async for value in engine.shown(job, 0.08):  # its latest value, at most one every 0.08 s
        ...                                      # (longer in a crowd), and its last

A job's generator is advanced by one worker at a time, never two, so it draws exactly what
it would draw alone. Cancelling a job (Stop, a closed tab) closes its generator before its
next step. No gradio here: app.py streams `shown` to the page.
"""
import asyncio
import threading
from collections import deque


class Job:
    """A generator run by the engine: its values not yet shown (the last `keep` of them), how
    many it has given, whether it has ended, and the exception it ended with, if any."""

    def __init__(self, steps, keep=1):
        self.steps = steps
        self.unseen, self.count = deque(maxlen=keep), 0
        self.ended, self.error = False, None
        self.cancelled = False

    def cancel(self):
        """Stop at the next step: the generator is closed there, by the engine."""
        self.cancelled = True


class Engine:
    """Runs jobs a step at a time, round robin, on `workers` threads (daemons, started at once),
    and shows them (`shown`): all viewers together at most `shows` values a second (None: no
    limit), so that showing a crowd what is drawn never costs more than a share of the cores."""

    def __init__(self, workers=2, shows=None):
        self.ready = deque()  # jobs waiting for their next step
        self.wake = threading.Condition()
        self.shows, self.viewers = shows, 0
        self.threads = [threading.Thread(target=self.work, name=f"engine-{k}", daemon=True) for k in range(workers)]
        for t in self.threads:
            t.start()

    def submit(self, steps, keep=1):
        """Run the generator `steps`; a viewer is shown its values in order, but for the last
        `keep` only where it falls behind (1: the latest alone)."""
        job = Job(steps, keep)
        with self.wake:
            self.ready.append(job)
            self.wake.notify()
        return job

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
            job.unseen.append(next(job.steps))
            job.count += 1
            return True
        except StopIteration:
            pass
        except Exception as e:  # noqa: BLE001  the job's own failure, raised to whoever shows it
            job.error = e.with_traceback(e.__traceback__.tb_next)  # not this frame, which holds the job
        job.ended = True
        return False

    def pace(self, seconds):
        """Seconds between the values one viewer is shown: `seconds`, or longer while so many
        watch that together they would be shown more than `shows` a second."""
        return max(seconds, self.viewers / self.shows) if self.shows else seconds

    async def shown(self, job, seconds, first=0.01):
        """The values of `job` as a viewer sees them, in order (those it kept; in a crowd, the
        latest only), at most one every pace(seconds) (looking every `first` seconds until
        there is one), its last always;
        its error is raised here. Leaving early (the viewer gone) cancels the job. (Called on
        one event loop.)"""
        seen = False
        self.viewers += 1
        try:
            while True:
                ended = job.ended  # read before the values, so that the last one is never missed
                while len(job.unseen) > 1 and self.pace(seconds) > seconds:  # a crowd: the latest only
                    job.unseen.popleft()
                if job.unseen:
                    seen = True
                    yield job.unseen.popleft()
                elif ended:
                    break
                await asyncio.sleep(max(self.pace(seconds), first) if seen else first)
            if job.error is not None:
                raise job.error
        finally:
            self.viewers -= 1
            job.cancel()


def once(f, *args, **kwargs):
    """f(*args, **kwargs) as a job of one step."""
    yield f(*args, **kwargs)
