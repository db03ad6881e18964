"""Computing apart from showing: every sampler the app starts runs here, a step at a time and
round robin, on one worker per core, so that the cores never sleep while there is work and
every request advances at once, a fair share each. What a viewer sees is paced apart
(`Engine.shown`), within a budget of pictures a second for all viewers together.

    engine = Engine(workers=2, shows=25, processes=True)
    job = engine.submit(studio.sample, name, 16, 1.0, 0)  # each step of the generator it returns: a picture, say
    async for value in engine.shown(job, 0.08):  # its latest value, at most one every 0.08 s
        ...                                      # (longer in a crowd), and its last

A job's generator is advanced by one worker at a time, never two, so it draws exactly what
it would draw alone. Cancelling a job (Stop, a closed tab) closes its generator before its
next step. Workers are threads, or (processes=True) processes of their own, `python -m
pixelcnn.engine`, each with one thread: Python runs one thread at a time, so two sampler
threads share one core's worth of the per-pixel Python code, where two processes use both
cores (scripts/threads.py). A job's function and values then travel pickled: module-level
functions, values small (studio's Grids are drawn where they are shown). No gradio here:
app.py streams `shown` to the page.
"""
import asyncio
import ctypes
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from contextlib import suppress

PIPE_BYTES = 1 << 20


class Job:
    """A call of a generator function run by the engine: its values not yet shown (the last
    `keep` of them), how many it has given, the asides it said (with tell=True), whether it
    has ended, and the exception it ended with, if any."""

    def __init__(self, call, keep=1, on_cancel=None):
        self.call, self.steps = call, None  # (f, args, kwargs); the generator, from its first step
        self.unseen, self.count, self.said = deque(maxlen=keep), 0, []
        self.ended, self.error, self.done = False, None, threading.Event()
        self.cancelled, self.on_cancel = False, on_cancel

    def cancel(self):
        """Stop at the next step: the generator is closed there, by the engine."""
        if not self.cancelled and not self.ended and self.on_cancel:
            self.on_cancel()
        self.cancelled = True

    def put(self, value):
        self.unseen.append(value)
        self.count += 1

    def aside(self, *said):
        self.said.append(said)

    def finish(self, error=None):
        self.error, self.ended = error, True
        self.done.set()


class Engine:
    """Runs jobs a step at a time, round robin, on `workers` threads or processes (started with
    the first job, or by start()), and shows them (`shown`): all viewers together at most
    `shows` values a second (None: no limit), so that showing a crowd what is drawn never
    costs more than a share of the cores."""

    def __init__(self, workers=2, shows=None, processes=False):
        self.workers, self.processes, self.shows, self.viewers = workers, processes, shows, 0
        self.ready = deque()  # threads: jobs waiting for their next step
        self.wake = threading.Condition()
        self.started = []  # the threads, or the Processes

    def start(self):
        with self.wake:
            while len(self.started) < self.workers:
                k = len(self.started)
                self.started.append(Process(k) if self.processes else
                                    threading.Thread(target=self.work, name=f"engine-{k}", daemon=True))
                if not self.processes:
                    self.started[-1].start()
        return self

    def submit(self, f, *args, keep=1, tell=False, **kwargs):
        """Run the generator f(*args, **kwargs) (given tell=job.aside where tell=True); a viewer is
        shown its values in order, but for the last `keep` only where it falls behind (1: the
        latest alone)."""
        self.start()
        if self.processes:
            return min(self.started, key=lambda p: len(p.jobs)).submit(f, args, kwargs, keep, tell)
        job = Job((f, args, kwargs), keep)
        if tell:
            kwargs["tell"] = job.aside
        return self.run(job)

    def run(self, job):
        """Queue `job` for its next step on the worker threads."""
        with self.wake:
            self.ready.append(job)
            self.wake.notify()
        return job

    def everywhere(self, f, *args):
        """[f(*args)] run once on every worker process (once here, with threads), when all have
        run it: loading a model, say."""
        if not self.processes:
            return [f(*args)]
        jobs = [p.submit(once, (f, *args), {}, 1, False) for p in self.start().started]
        for job in jobs:
            job.done.wait()
            if job.error is not None:
                raise job.error
        return [job.unseen[-1] for job in jobs]

    def close(self):
        """Stop the worker processes (threads are daemons: they end with the program)."""
        for p in self.started if self.processes else ():
            p.close()

    def work(self):
        while True:
            with self.wake:
                while not self.ready:
                    self.wake.wait()
                job = self.ready.popleft()
            if self.step(job):
                self.run(job)

    @staticmethod
    def step(job):
        """Advance `job` once; whether it has steps left."""
        try:
            if job.steps is None and not job.cancelled:
                f, args, kwargs = job.call
                job.steps = f(*args, **kwargs)
            if job.cancelled:
                if job.steps is not None:
                    job.steps.close()
                raise StopIteration
            job.put(next(job.steps))
            return True
        except StopIteration:
            job.finish()
        except Exception as e:  # noqa: BLE001  the job's own failure, raised to whoever shows it
            job.finish(e.with_traceback(e.__traceback__.tb_next))  # not this frame, which holds the job
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


# ---------------------------------------------------------------- worker processes

class Process:
    """A worker process and the jobs it runs: they are sent to it, and their values, asides and
    ends read back, by a thread here. Should it die, its jobs fail and a new one takes over."""

    def __init__(self, k):
        self.k, self.jobs, self.ids, self.lock = k, {}, itertools.count(), threading.Lock()
        self.launch()

    def launch(self):
        down, up = os.pipe(), os.pipe()  # (read, write) each: jobs down to the worker, what they give up
        # it imports what this process can (the package, the tests' modules) and nothing more: no gradio
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", "pixelcnn.engine", str(down[0]), str(up[1])],
                                     pass_fds=(down[0], up[1]), env=env)
        os.close(down[0]), os.close(up[1])
        with suppress(OSError, AttributeError):  # Linux: room for a second of a worker's pictures (64 KB by default),
            import fcntl  # so that it never waits for this process to read them (a POSIX module)

            fcntl.fcntl(up[0], fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.to, self.back = os.fdopen(down[1], "wb"), os.fdopen(up[0], "rb", buffering=PIPE_BYTES)
        threading.Thread(target=self.read, args=(self.back,), name=f"engine-{self.k}", daemon=True).start()

    def send(self, *message):
        with self.lock:
            self.write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def write(self, data):
        try:
            self.to.write(data)
            self.to.flush()
        except (OSError, ValueError):  # the worker is gone: read() fails its jobs
            pass

    def submit(self, f, args, kwargs, keep, tell):
        with self.lock:  # never to a worker being replaced
            key = next(self.ids)
            # pickled first: what cannot be (a lambda, say) is refused here, nothing sent
            data = pickle.dumps(("start", key, f, args, kwargs, tell), protocol=pickle.HIGHEST_PROTOCOL)
            job = self.jobs[key] = Job((f, args, kwargs), keep, on_cancel=lambda: self.send("cancel", key))
            self.write(data)
        return job

    def read(self, back):
        try:
            while True:
                kind, key, value = pickle.load(back)
                job = self.jobs.get(key)
                if kind == "value" and job:
                    job.put(value)
                elif kind == "said" and job:
                    job.aside(*value)
                elif kind == "end" and job:
                    self.jobs.pop(key).finish(value)
        except Exception:  # noqa: BLE001  its end (EOFError), or what cannot be read: it is replaced
            pass
        back.close()
        with self.lock:
            if self.to.closed:  # by close()
                return
            self.proc.kill()  # where it still runs
            code = self.proc.wait()
            self.to.close()
            lost, self.jobs = self.jobs, {}
            self.launch()
        for job in lost.values():
            job.finish(RuntimeError(f"The sampler's process stopped (exit status {code}): try again."))

    def close(self):
        with self.lock:
            self.to.close()
        self.proc.terminate()
        self.proc.wait()


class Relayed(Job):
    """A job in a worker process: what it gives, says and ends with, sent back up."""

    def __init__(self, key, call, send, jobs):
        super().__init__(call, keep=0)
        self.key, self.send, self.jobs = key, send, jobs

    def put(self, value):
        self.send("value", self.key, value)

    def aside(self, *said):
        self.send("said", self.key, said)

    def finish(self, error=None):
        if error is not None and not can_pickle(error):
            traceback.print_exception(error)  # to the server's log
            error = RuntimeError(f"{type(error).__name__}: {error}")
        self.jobs.pop(self.key, None)
        self.send("end", self.key, error)


def can_pickle(value):
    try:
        pickle.dumps(value)
        return True
    except Exception:  # noqa: BLE001  whatever pickling a value raises
        return False


def tame_malloc(arenas=2, mmap_mb=4, trim_mb=16):
    """glibc's malloc, set for a server that lives for days: its worker threads share two arenas
    (not up to 8 per core, each keeping memory); blocks of 4 MB and more (a large upload's
    pixels) are mapped apart and go back to the system when freed, instead of raising the
    threshold and staying on the heap; and free memory beyond 16 MB at a heap's top is given
    back. scripts/loadtest.py and scripts/soak.py show the memory flat. Elsewhere a no-op."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-8, arenas)  # M_ARENA_MAX
    mallopt(-3, mmap_mb << 20)  # M_MMAP_THRESHOLD, fixed
    mallopt(-1, trim_mb << 20)  # M_TRIM_THRESHOLD


def serve(down, up):
    """A worker process: run the jobs read from `down` on one thread, round robin, and write
    their values to `up`, until `down` ends (the server gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which closes `down`
    tame_malloc()
    local, jobs, lock = Engine(workers=1).start(), {}, threading.Lock()

    def send(*message):
        with lock:
            try:
                pickle.dump(message, up, protocol=pickle.HIGHEST_PROTOCOL)
                up.flush()
            except OSError:  # the server is gone
                os._exit(0)

    while True:
        try:
            kind, key, *rest = pickle.load(down)
        except EOFError:
            return
        if kind == "start":
            f, args, kwargs, tell = rest
            jobs[key] = job = Relayed(key, (f, args, kwargs), send, jobs)
            if tell:
                kwargs["tell"] = job.aside
            local.run(job)
        elif kind == "cancel" and (job := jobs.get(key)):
            job.cancel()


if __name__ == "__main__":
    serve(os.fdopen(int(sys.argv[1]), "rb"), os.fdopen(int(sys.argv[2]), "wb"))
