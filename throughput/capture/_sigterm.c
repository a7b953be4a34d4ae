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
 * How: the handler asks the interpreter's main thread to run ``on_term`` between two bytecodes
 * (``Py_AddPendingCall``, which CPython's own signal handler called for the same purpose until 3.9; the
 * handler calls it once, for the first SIGTERM) and arms a timer. ``on_term`` returns False when the main
 * thread was inside throughput's own recording code (a recorder mid-update: it is asked again at the next
 * bytecode boundary), or calls ``take_over()`` and never returns (it writes the report and kills the
 * process). If the main thread does not get there within ``grace_s`` (blocked in a long C call, a
 * collective waiting for a dead peer), the timer's signal (a real-time signal of its own, ``GRACE_SIGNAL``)
 * kills the process by SIGTERM without a report, as without the profiler. A forked child inherits the
 * handler, not the timer: there the first SIGTERM kills at once. A second SIGTERM kills at once.
 *
 * No thread: a second thread in the process would turn glibc's single-threaded malloc into the locking
 * one for the whole run (counted: +0.4% instructions a step on a model of 900 small module calls).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GRACE_SIGNAL (SIGRTMAX - 7)   /* a real-time signal nothing in a training process uses */

static pid_t owner_pid = 0;
static volatile sig_atomic_t requested = 0;    /* a first SIGTERM came */
static volatile sig_atomic_t taken_over = 0;   /* the main thread is writing the report */
static int installed = 0;
static double grace_s = 5.0;
static timer_t grace_timer;
static PyObject *on_term = NULL;   /* called in the main thread (a strong reference while installed) */

static void
set_handler(int signum, void (*handler)(int), int flags)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = flags;
    sigaction(signum, &action, NULL);
}

/* The default disposition back and SIGTERM raised: the process dies by it (async-signal-safe). */
static void
die_by_sigterm(void)
{
    set_handler(SIGTERM, SIG_DFL, 0);
    kill(getpid(), SIGTERM);
}

static int run_on_term(void *unused);

static void
on_sigterm(int signum)
{
    int saved = errno;
    (void)signum;
    if (getpid() != owner_pid || requested) {   /* a forked child, or a second SIGTERM: die now */
        die_by_sigterm();
    }
    else {
        requested = 1;
        struct itimerspec when;
        memset(&when, 0, sizeof when);
        when.it_value.tv_sec = (time_t)grace_s;
        when.it_value.tv_nsec = (long)((grace_s - (double)(time_t)grace_s) * 1e9);
        timer_settime(grace_timer, 0, &when, NULL);
        if (Py_AddPendingCall(run_on_term, NULL) < 0) { /* the queue is full: the timer ends the run */ }
    }
    errno = saved;
}

static void
on_grace(int signum)
{
    (void)signum;
    if (getpid() == owner_pid && requested && !taken_over)
        die_by_sigterm();   /* the main thread never got to Python code: as without the profiler */
}

/* Run in the main thread with the GIL held (a pending call): always 0, an error never leaks out. */
static int
run_on_term(void *unused)
{
    (void)unused;
    PyObject *callback = on_term;
    if (callback == NULL || taken_over)   /* uninstalled meanwhile: the caller reads ``requested`` */
        return 0;
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
    if (again && Py_AddPendingCall(run_on_term, NULL) < 0) { /* the timer ends the run */ }
    return 0;
}

/* 1 when ``signum``'s disposition is ``handler`` (SIG_DFL, or one of ours). */
static int
handled_by(int signum, void (*handler)(int))
{
    struct sigaction now;
    return sigaction(signum, NULL, &now) == 0 && now.sa_handler == handler;
}

static PyObject *
install(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *callback;
    double grace;
    if (!PyArg_ParseTuple(args, "Od:install", &callback, &grace))
        return NULL;
    if (installed || !handled_by(SIGTERM, SIG_DFL) || !handled_by(GRACE_SIGNAL, SIG_DFL))
        Py_RETURN_FALSE;   /* already ours, or the process has its own disposition for one of them */
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = GRACE_SIGNAL;
    if (timer_create(CLOCK_MONOTONIC, &event, &grace_timer) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    owner_pid = getpid();
    requested = taken_over = 0;
    grace_s = grace;
    on_term = Py_NewRef(callback);
    set_handler(GRACE_SIGNAL, on_grace, SA_RESTART);
    set_handler(SIGTERM, on_sigterm, SA_RESTART);
    installed = 1;
    Py_RETURN_TRUE;
}

/* SIGTERM's default back (unless the script installed its own since), the timer stopped. */
static void
stop(void)
{
    if (handled_by(SIGTERM, on_sigterm))
        set_handler(SIGTERM, SIG_DFL, 0);
    struct itimerspec off;
    memset(&off, 0, sizeof off);
    timer_settime(grace_timer, 0, &off, NULL);
}

static PyObject *
take_over(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    if (installed) {
        taken_over = 1;
        stop();   /* from now on a second SIGTERM kills at once */
    }
    Py_RETURN_NONE;
}

static PyObject *
uninstall(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    if (!installed)
        Py_RETURN_FALSE;
    stop();
    timer_delete(grace_timer);
    set_handler(GRACE_SIGNAL, SIG_DFL, 0);
    Py_CLEAR(on_term);   /* a pending call still queued finds no callback and does nothing */
    installed = 0;
    return PyBool_FromLong(requested);
}

static PyMethodDef methods[] = {
    {"install", install, METH_VARARGS,
     "install(on_term, grace_s) -> bool: our SIGTERM handler, if the disposition is the default."},
    {"take_over", take_over, METH_NOARGS,
     "Called by on_term when it will end the process: the timer stops, SIGTERM is the default again."},
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
