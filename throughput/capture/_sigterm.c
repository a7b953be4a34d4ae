/* SIGTERM while a profiled script runs: the report is written, then the process dies by SIGTERM, as
 * plain python would have died at once (status -15, no ``finally`` block, no atexit handler runs).
 *
 * Why C: a Python handler (``signal.signal``) is what the script sees in ``signal.getsignal(SIGTERM)``,
 * and frameworks act on it (Lightning chains a handler it finds there into its own graceful stop, which
 * then ended the step at once); and it has to raise an exception to stop the script, which runs the
 * script's ``finally`` blocks and lets ``except BaseException`` swallow it. This handler is installed
 * with ``sigaction`` directly, so Python's own record of the disposition still reads SIG_DFL: a script
 * (or framework) that installs its own SIGTERM handler replaces ours, as it would replace the default.
 *
 * How: the handler only writes a byte to a pipe (async-signal-safe). A thread of ours, not a Python
 * thread (``threading.enumerate()`` does not list it), wakes and asks the interpreter's main thread to
 * run ``on_term`` between two bytecodes (``Py_AddPendingCall``). ``on_term`` returns False when the main
 * thread was inside throughput's own code (a recorder mid-update: it is asked again 1 ms later), or calls
 * ``take_over()`` and never returns (it writes the report and kills the process). If the main thread
 * does not get there within ``grace_s`` (blocked in a long C call, a collective waiting for a dead peer),
 * the process dies by SIGTERM without a report, as without the profiler. A forked child inherits the
 * handler but not the thread: there it dies by SIGTERM at once. A second SIGTERM kills at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pid_t owner_pid = 0;
static int wake_r = -1, wake_w = -1;     /* handler (or uninstall) -> watcher */
static int reply_r = -1, reply_w = -1;   /* main thread -> watcher: 'S' taken over, 'R' ask again */
static volatile sig_atomic_t requested = 0;
static int installed = 0;
static double grace_s = 5.0;
static PyObject *on_term = NULL;         /* called in the main thread (strong reference while installed) */
static pthread_t watcher;

static void
die_by_sigterm(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTERM, &dfl, NULL);
    kill(getpid(), SIGTERM);
}

static void
on_sigterm(int signum)
{
    int saved = errno;
    (void)signum;
    if (getpid() != owner_pid || requested) {   /* a forked child, or a second SIGTERM: die now */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGTERM, &dfl, NULL);
        raise(SIGTERM);   /* blocked while this handler runs; delivered, by default, on return */
    }
    else {
        char b = 'T';
        requested = 1;
        if (write(wake_w, &b, 1) < 0) { /* the pipe is gone: nothing else is safe here */ }
    }
    errno = saved;
}

static int
is_ours(void)
{
    struct sigaction now;
    return sigaction(SIGTERM, NULL, &now) == 0 && now.sa_handler == on_sigterm;
}

static void
reply(char c)
{
    if (write(reply_w, &c, 1) < 0) { /* the watcher is gone */ }
}

/* Run in the main thread with the GIL held (a pending call): always 0, an error never leaks out. */
static int
run_on_term(void *unused)
{
    (void)unused;
    PyObject *callback = on_term;
    if (callback == NULL) {   /* uninstalled meanwhile: the caller reads ``requested`` */
        reply('S');
        return 0;
    }
    Py_INCREF(callback);
    PyObject *r = PyObject_CallNoArgs(callback);
    Py_DECREF(callback);
    if (r == NULL) {
        PyErr_WriteUnraisable(callback);
        die_by_sigterm();
        return 0;
    }
    int again = (r == Py_False);
    Py_DECREF(r);
    if (again)
        reply('R');
    return 0;
}

static double
monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *
watch(void *unused)
{
    (void)unused;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);   /* signals go to the script's threads, never here */
    char b = 0;
    ssize_t n;
    do {
        n = read(wake_r, &b, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1 || b != 'T')   /* uninstalled ('Q') or the pipe closed */
        return NULL;
    double deadline = monotonic_s() + grace_s;
    for (;;) {
        if (Py_AddPendingCall(run_on_term, NULL) == 0) {
            struct pollfd p = {.fd = reply_r, .events = POLLIN};
            double left = deadline - monotonic_s();
            int ready = left > 0 ? poll(&p, 1, (int)(left * 1000) + 1) : 0;
            if (ready > 0 && read(reply_r, &b, 1) == 1 && b == 'S')
                return NULL;   /* the main thread took over (or the run had already ended) */
        }
        if (monotonic_s() >= deadline) {
            die_by_sigterm();   /* as without the profiler: no report */
            return NULL;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

static int
make_pipe(int *r, int *w)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    *r = fds[0];
    *w = fds[1];
    return fcntl(*w, F_SETFL, O_NONBLOCK);
}

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static PyObject *
install(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *callback;
    double grace;
    if (!PyArg_ParseTuple(args, "Od:install", &callback, &grace))
        return NULL;
    struct sigaction now;
    if (installed || sigaction(SIGTERM, NULL, &now) < 0 || now.sa_handler != SIG_DFL)
        Py_RETURN_FALSE;   /* already ours, or the script's process has its own disposition */
    if (make_pipe(&wake_r, &wake_w) < 0 || make_pipe(&reply_r, &reply_w) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    owner_pid = getpid();
    requested = 0;
    grace_s = grace;
    on_term = Py_NewRef(callback);
    int err = pthread_create(&watcher, NULL, watch, NULL);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_CLEAR(on_term);
        goto fail;
    }
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_handler = on_sigterm;
    sigemptyset(&ours.sa_mask);
    ours.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &ours, NULL);
    installed = 1;
    Py_RETURN_TRUE;
fail:
    close_fd(&wake_r);
    close_fd(&wake_w);
    close_fd(&reply_r);
    close_fd(&reply_w);
    return NULL;
}

/* The handler off (unless the script installed its own since), the watcher stopped. */
static void
stop(void)
{
    if (is_ours()) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGTERM, &dfl, NULL);
    }
    Py_CLEAR(on_term);
}

static PyObject *
take_over(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    if (installed) {
        stop();   /* from now on a second SIGTERM kills at once */
        reply('S');
    }
    Py_RETURN_NONE;
}

static PyObject *
uninstall(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    if (!installed)
        Py_RETURN_FALSE;
    stop();
    int was_requested = requested;
    if (!was_requested) {   /* the watcher still waits for a first SIGTERM: let it go */
        char q = 'Q';
        if (write(wake_w, &q, 1) == 1) {
            Py_BEGIN_ALLOW_THREADS
            pthread_join(watcher, NULL);
            Py_END_ALLOW_THREADS
        }
    }
    else {
        reply('S');   /* a pending call may still come: it finds no callback and does nothing */
        pthread_detach(watcher);
    }
    close_fd(&wake_r);
    close_fd(&wake_w);
    if (!was_requested) {
        close_fd(&reply_r);
        close_fd(&reply_w);
    }
    installed = 0;
    return PyBool_FromLong(was_requested);
}

static PyMethodDef methods[] = {
    {"install", install, METH_VARARGS,
     "install(on_term, grace_s) -> bool: our SIGTERM handler, if the disposition is the default."},
    {"take_over", take_over, METH_NOARGS,
     "Called by on_term when it will end the process: the watcher stops waiting, SIGTERM is default again."},
    {"uninstall", uninstall, METH_NOARGS,
     "uninstall() -> bool: the handler off; True when a SIGTERM had come."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sigterm_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "throughput.capture._sigterm",
    .m_doc = "SIGTERM reported and then obeyed, invisibly to the script (optional; see runner.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__sigterm(void)
{
    return PyModule_Create(&sigterm_module);
}
