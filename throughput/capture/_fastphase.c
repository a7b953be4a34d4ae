/* The hot path of ``with prof.phase(name):`` on a host-timed recorder, without Python frames, and the
 * drain's split of the log into columns (``split_log``, at the end of this file).
 *
 * ``throughput.capture.recorder.RecordedPhase`` is the contract; this type does exactly what its
 * ``__enter__`` and ``__exit__`` do (the Python class stays as the fallback when this module is not
 * built). Why C: a Python frame per boundary is most of the API's own cost. On an empty step, 3 phases +
 * step() cost 5.2 us with the Python class and 4.0 us with this one (2-core Xeon with AMX, thread CPU
 * time). Inside a real step the frames cost more (caches); how much more is at the edge of what a shared
 * 2-core host resolves (a no-op ``with`` block: +0.9..1.3% of a 1.7-1.9 ms MLP step, where two identical
 * plain loops differ by 0.6%).
 *
 * Enter: the frame ``(name, now())`` is appended to the recorder's log and its stack and remembered
 * (re-entrant use nests); the log is drained when it grows past ``drain_at`` entries. Exit: the clock is
 * read first, then ``(None, now)`` is appended when the frame is still the innermost open phase;
 * otherwise ``misuse(frame, stack)`` builds the exception raised. While the recorder is not ``direct``
 * (observed, or stopped) both go through the recorder's ``open`` / ``close`` methods, as in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

/* Mode(): the recorder's two switches (``Recorder.mode``), read here as C fields. Both start True;
 * the recorder turns them off (``stop_recording``, ``observe``) and the phases and iterators see it at
 * their next boundary. As attributes of the recorder they cost a dictionary lookup each, twice a
 * boundary: ~1 us an iterated batch inside a 10 ms training step (caches cold). */
typedef struct {
    PyObject_HEAD
    char recording;   /* False after stop_recording: nothing is recorded */
    char direct;      /* recording and no observer: the inlined boundaries may run */
} Mode;

static PyObject *
Mode_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Mode", kwlist))
        return NULL;
    Mode *self = (Mode *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->recording = self->direct = 1;
    return (PyObject *)self;
}

static PyMemberDef Mode_members[] = {
    {"recording", T_BOOL, offsetof(Mode, recording), 0, "False after the run ended: nothing is recorded."},
    {"direct", T_BOOL, offsetof(Mode, direct), 0, "Recording and not observed: the inlined paths run."},
    {NULL},
};

static PyTypeObject ModeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "throughput.capture._fastphase.Mode",
    .tp_doc = PyDoc_STR("Mode(): a recorder's switches, recording and direct (both True at first)."),
    .tp_basicsize = sizeof(Mode),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Mode_new,
    .tp_members = Mode_members,
};

#define MODE(obj) ((Mode *)(obj))

/* What a phase and a timed iterator hold of their recorder (all strong references). */
typedef struct {
    PyObject *rec;      /* the Recorder */
    PyObject *log;      /* rec._log */
    PyObject *stack;    /* rec._stack */
    PyObject *now;      /* rec._now: a callable returning seconds (float) */
    PyObject *mode;     /* rec.mode (a Mode) */
    Py_ssize_t drain_at;   /* rec._drain() once the log holds more entries than this */
    int own_clock;      /* now is time.perf_counter, read here instead (see read_now) */
    unsigned long owner;   /* rec.owner_thread: boundaries on any other thread record nothing */
} Hot;

typedef struct {
    PyObject_HEAD
    Hot hot;
    PyObject *name;     /* the phase name (str) */
    PyObject *frames;   /* list: the frames this context opened, innermost last (None when stopped) */
    PyObject *misuse;   /* misuse(frame, stack) -> exception instance */
} Phase;

static PyObject *str_mode, *str_open, *str_close, *str_drain, *str_close_through;
static PyObject *str_log, *str_stack, *str_now;

/* The clock. ``time.perf_counter`` is CLOCK_MONOTONIC on Linux (module init checks that with
 * ``time.get_clock_info``; elsewhere ``perf_counter_obj`` stays NULL and every read calls ``now``). Read
 * here with the same conversion as CPython's (``_PyTime_AsSecondsDouble`` of the nanosecond count), so a
 * reading equals what ``time.perf_counter()`` would have returned at that instant and mixes with the
 * recorder's own Python-side readings. Why: calling the Python function from C goes through the
 * vectorcall machinery and CPython's time layers, ~2,400 instructions and ~160 instruction-cache misses a
 * step of 3 phases and an iterated batch inside a training step (callgrind, 64-wide MLP); the
 * instruction cache is cold there, so each miss costs. */
static PyObject *perf_counter_obj;   /* time.perf_counter when it is CLOCK_MONOTONIC, else NULL */

static PyObject *
monotonic_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    long long t = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    volatile double d;   /* as CPython: volatile keeps the rounding of the division as written */
    if (t % 1000000000LL == 0) {
        d = (double)(t / 1000000000LL);
    }
    else {
        d = (double)t;
        d /= 1e9;
    }
    return PyFloat_FromDouble(d);
}

static inline PyObject *
read_now(Hot *hot)
{
    return hot->own_clock ? monotonic_seconds() : PyObject_CallNoArgs(hot->now);
}

/* ``hot`` filled from ``rec``: the recorder and its ``_log`` and ``_stack`` (lists), ``_now`` (the clock)
 * and ``mode`` (a Mode), as new references, and its ``owner_thread``. -1 with an exception set and ``hot`` left empty when one is
 * missing or of the wrong kind. */
static int
hot_init(Hot *hot, PyObject *rec, Py_ssize_t drain_at)
{
    hot->log = PyObject_GetAttr(rec, str_log);
    hot->stack = hot->log ? PyObject_GetAttr(rec, str_stack) : NULL;
    hot->now = hot->stack ? PyObject_GetAttr(rec, str_now) : NULL;
    hot->mode = hot->now ? PyObject_GetAttr(rec, str_mode) : NULL;
    PyObject *owner = hot->mode ? PyObject_GetAttrString(rec, "owner_thread") : NULL;
    if (owner != NULL) {   /* a conversion error is caught below with the rest */
        hot->owner = PyLong_AsUnsignedLong(owner);
        Py_DECREF(owner);
    }
    if (hot->mode != NULL && (!PyList_Check(hot->log) || !PyList_Check(hot->stack)))
        PyErr_SetString(PyExc_TypeError, "the recorder's _log and _stack must be lists");
    else if (hot->mode != NULL && !Py_IS_TYPE(hot->mode, &ModeType))
        PyErr_SetString(PyExc_TypeError, "the recorder's mode must be a _fastphase.Mode");
    if (PyErr_Occurred()) {
        Py_CLEAR(hot->log);
        Py_CLEAR(hot->stack);
        Py_CLEAR(hot->now);
        Py_CLEAR(hot->mode);
        return -1;
    }
    hot->rec = Py_NewRef(rec);
    hot->drain_at = drain_at;
    hot->own_clock = perf_counter_obj != NULL && hot->now == perf_counter_obj;
    return 0;
}

static int
hot_traverse(Hot *hot, visitproc visit, void *arg)
{
    Py_VISIT(hot->rec);
    Py_VISIT(hot->log);
    Py_VISIT(hot->stack);
    Py_VISIT(hot->now);
    Py_VISIT(hot->mode);
    return 0;
}

static void
hot_clear(Hot *hot)
{
    Py_CLEAR(hot->rec);
    Py_CLEAR(hot->log);
    Py_CLEAR(hot->stack);
    Py_CLEAR(hot->now);
    Py_CLEAR(hot->mode);
}

static PyObject *
Phase_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *rec, *name, *misuse;
    Py_ssize_t drain_at;
    static char *kwlist[] = {"rec", "name", "drain_at", "misuse", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OUnO:Phase", kwlist, &rec, &name, &drain_at, &misuse))
        return NULL;
    Phase *self = (Phase *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->frames = PyList_New(0);
    if (self->frames == NULL || hot_init(&self->hot, rec, drain_at) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->name = Py_NewRef(name);
    self->misuse = Py_NewRef(misuse);
    return (PyObject *)self;
}

static int
Phase_traverse(Phase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->name);
    Py_VISIT(self->frames);
    Py_VISIT(self->misuse);
    return hot_traverse(&self->hot, visit, arg);
}

static int
Phase_clear(Phase *self)
{
    hot_clear(&self->hot);
    Py_CLEAR(self->name);
    Py_CLEAR(self->frames);
    Py_CLEAR(self->misuse);
    return 0;
}

static void
Phase_dealloc(Phase *self)
{
    PyObject_GC_UnTrack(self);
    Phase_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Through the recorder's own methods: it is observed (its open/close tell the observer) or stopped. */
static PyObject *
enter_indirect(Phase *self)
{
    PyObject *frame;
    if (MODE(self->hot.mode)->recording) {
        frame = PyObject_CallMethodOneArg(self->hot.rec, str_open, self->name);
        if (frame == NULL)
            return NULL;
    }
    else {
        frame = Py_NewRef(Py_None);
    }
    int err = PyList_Append(self->frames, frame);
    Py_DECREF(frame);
    if (err < 0)
        return NULL;
    return Py_NewRef((PyObject *)self);
}

/* The hot path's boundaries, shared by the phase and the timed iterator (the recorder's ``open`` and
 * ``close`` bodies, as RecordedPhase inlines them). */

/* Open ``name`` now: the frame ``(name, now())`` appended to the log and the stack (a new reference). */
static PyObject *
open_direct(Hot *hot, PyObject *name)
{
    PyObject *t = read_now(hot);
    if (t == NULL)
        return NULL;
    PyObject *frame = PyTuple_Pack(2, name, t);
    Py_DECREF(t);
    if (frame == NULL)
        return NULL;
    if (PyList_Append(hot->log, frame) < 0 || PyList_Append(hot->stack, frame) < 0) {
        Py_DECREF(frame);
        return NULL;
    }
    return frame;
}

/* 1 when ``frame`` is the innermost open phase of the recorder's stack. */
static int
on_top(Hot *hot, PyObject *frame)
{
    Py_ssize_t depth = PyList_GET_SIZE(hot->stack);
    return depth > 0 && PyList_GET_ITEM(hot->stack, depth - 1) == frame;
}

/* Close the innermost open phase at ``t`` (the caller checked ``on_top``): popped from the stack,
 * ``(None, t)`` appended to the log. */
static int
close_top(Hot *hot, PyObject *t)
{
    Py_ssize_t depth = PyList_GET_SIZE(hot->stack);
    if (PyList_SetSlice(hot->stack, depth - 1, depth, NULL) < 0)
        return -1;
    PyObject *closing = PyTuple_Pack(2, Py_None, t);
    if (closing == NULL)
        return -1;
    int err = PyList_Append(hot->log, closing);
    Py_DECREF(closing);
    return err;
}

/* ``rec._drain()`` once the log holds more than ``drain_at`` entries. */
static int
drain_if_long(Hot *hot)
{
    if (PyList_GET_SIZE(hot->log) <= hot->drain_at)
        return 0;
    PyObject *r = PyObject_CallMethodNoArgs(hot->rec, str_drain);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
Phase_enter(Phase *self, PyObject *Py_UNUSED(ignored))
{
    if (PyThread_get_thread_ident() != self->hot.owner)   /* another thread's phase: not recorded, and */
        return Py_NewRef((PyObject *)self);               /* the owner's frames are left as they are */
    if (!MODE(self->hot.mode)->direct)
        return enter_indirect(self);
    PyObject *frame = open_direct(&self->hot, self->name);
    if (frame == NULL)
        return NULL;
    int err = PyList_Append(self->frames, frame);
    Py_DECREF(frame);
    if (err < 0 || drain_if_long(&self->hot) < 0)
        return NULL;
    return Py_NewRef((PyObject *)self);
}

/* The last frame of ``frames``, removed (a new reference), or NULL without an error when empty. */
static PyObject *
pop_frame(PyObject *frames)
{
    Py_ssize_t n = PyList_GET_SIZE(frames);
    if (n == 0)
        return NULL;
    PyObject *frame = Py_NewRef(PyList_GET_ITEM(frames, n - 1));
    if (PyList_SetSlice(frames, n - 1, n, NULL) < 0) {
        Py_DECREF(frame);
        return NULL;
    }
    return frame;
}

static PyObject *
Phase_exit(Phase *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (PyThread_get_thread_ident() != self->hot.owner)
        Py_RETURN_NONE;
    PyObject *t = read_now(&self->hot);   /* first: the phase ends when its body does */
    if (t == NULL)
        return NULL;
    PyObject *frame = pop_frame(self->frames);
    if (frame == NULL && PyErr_Occurred()) {
        Py_DECREF(t);
        return NULL;
    }
    PyObject *result = NULL;
    if (!MODE(self->hot.mode)->direct) {
        if (frame != NULL && frame != Py_None) {
            if (MODE(self->hot.mode)->recording) {
                int raising = nargs >= 1 && args[0] != Py_None;   /* phases left open inside close too */
                PyObject *r = PyObject_CallMethodOneArg(self->hot.rec, raising ? str_close_through : str_close, frame);
                if (r == NULL)
                    goto done;
                Py_DECREF(r);
            }
        }
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (on_top(&self->hot, frame)) {
        if (close_top(&self->hot, t) < 0)
            goto done;
        result = Py_NewRef(Py_None);
    }
    else if (frame != NULL && nargs >= 1 && args[0] != Py_None) {
        /* An exception is leaving the body with phases opened inside it still open (their closing code
         * never ran): they and this phase are closed, and the exception goes on unchanged. */
        PyObject *r = PyObject_CallMethodOneArg(self->hot.rec, str_close_through, frame);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
        result = Py_NewRef(Py_None);
    }
    else if (frame != NULL) {
        PyObject *exc = PyObject_CallFunctionObjArgs(self->misuse, frame, self->hot.stack, NULL);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
    }
    else {
        result = Py_NewRef(Py_None);
    }
done:
    Py_DECREF(t);
    Py_XDECREF(frame);
    return result;
}

static PyMethodDef Phase_methods[] = {
    {"__enter__", (PyCFunction)Phase_enter, METH_NOARGS, "Open the phase now."},
    {"__exit__", (PyCFunction)(void (*)(void))Phase_exit, METH_FASTCALL, "Close the phase now."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Phase_members[] = {
    {"_rec", T_OBJECT, offsetof(Phase, hot.rec), READONLY, "the recorder"},
    {"_name", T_OBJECT, offsetof(Phase, name), READONLY, "the phase name"},
    {"_frames", T_OBJECT, offsetof(Phase, frames), READONLY, "frames opened by this context, innermost last"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject PhaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "throughput.capture._fastphase.Phase",
    .tp_doc = PyDoc_STR("Phase(rec, name, drain_at, misuse): one phase of a host-timed recorder, as a "
                        "context manager without Python frames."),
    .tp_basicsize = sizeof(Phase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = Phase_new,
    .tp_dealloc = (destructor)Phase_dealloc,
    .tp_traverse = (traverseproc)Phase_traverse,
    .tp_clear = (inquiry)Phase_clear,
    .tp_methods = Phase_methods,
    .tp_members = Phase_members,
};

/* Timed(rec, iterable, phase, note, drain_at): ``Recorder.iterate_py`` (the contract) as an iterator
 * without a generator frame. Each ``next``: the wait for the next item of ``iter(iterable)`` (called at
 * the first ``next``, as the generator's body would) is logged as ``phase``, then ``note(item)`` is
 * called and the item returned. While the recorder is not ``direct`` the frame goes through its
 * ``open``/``close`` methods; once it stops recording, items pass through untimed. The frame is closed
 * when the wrapped iterator ends or raises; an error ends this iterator too, as it ends a generator. */
typedef struct {
    PyObject_HEAD
    Hot hot;
    PyObject *iterable;   /* until the first next */
    PyObject *iterator;   /* from the first next until the end (NULL after it) */
    PyObject *phase;
    PyObject *note;
} Timed;

static PyObject *
Timed_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *rec, *iterable, *phase, *note;
    Py_ssize_t drain_at;
    static char *kwlist[] = {"rec", "iterable", "phase", "note", "drain_at", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOUOn:Timed", kwlist, &rec, &iterable, &phase, &note, &drain_at))
        return NULL;
    Timed *self = (Timed *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if (hot_init(&self->hot, rec, drain_at) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->iterable = Py_NewRef(iterable);
    self->phase = Py_NewRef(phase);
    self->note = Py_NewRef(note);
    return (PyObject *)self;
}

static int
Timed_traverse(Timed *self, visitproc visit, void *arg)
{
    Py_VISIT(self->iterable);
    Py_VISIT(self->iterator);
    Py_VISIT(self->phase);
    Py_VISIT(self->note);
    return hot_traverse(&self->hot, visit, arg);
}

static int
Timed_clear(Timed *self)
{
    hot_clear(&self->hot);
    Py_CLEAR(self->iterable);
    Py_CLEAR(self->iterator);
    Py_CLEAR(self->phase);
    Py_CLEAR(self->note);
    return 0;
}

static void
Timed_dealloc(Timed *self)
{
    PyObject_GC_UnTrack(self);
    Timed_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ``rec.close(frame)`` if the frame is still the innermost open phase (the recorder's ``_close_wait``);
 * an exception already set is kept unless closing raises (then that one is raised instead). */
static int
close_wait(Timed *self, PyObject *frame)
{
    if (!on_top(&self->hot, frame))
        return 0;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallMethodOneArg(self->hot.rec, str_close, frame);
    if (r == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    Py_DECREF(r);
    PyErr_Restore(type, value, tb);
    return 0;
}

/* The end of this iterator: nothing more is yielded (an error already set propagates). */
static PyObject *
Timed_finish(Timed *self)
{
    Py_CLEAR(self->iterator);
    Py_CLEAR(self->iterable);
    return NULL;
}

static PyObject *
Timed_next(Timed *self)
{
    if (self->iterator == NULL) {
        if (self->iterable == NULL)   /* ended */
            return NULL;
        self->iterator = PyObject_GetIter(self->iterable);
        Py_CLEAR(self->iterable);
        if (self->iterator == NULL)
            return NULL;
    }
    if (!MODE(self->hot.mode)->recording || PyThread_get_thread_ident() != self->hot.owner) {
        /* the run ended, or another thread iterates: items pass through, untimed and not counted */
        PyObject *item = PyIter_Next(self->iterator);
        return item != NULL ? item : Timed_finish(self);
    }
    int direct = MODE(self->hot.mode)->direct;
    PyObject *frame;
    if (direct) {
        frame = open_direct(&self->hot, self->phase);
        if (frame == NULL)
            return NULL;
    }
    else {
        frame = PyObject_CallMethodOneArg(self->hot.rec, str_open, self->phase);
        if (frame == NULL)
            return NULL;
    }
    PyObject *item = PyIter_Next(self->iterator);
    if (item == NULL) {   /* the end, or an error: the wait ends here all the same */
        close_wait(self, frame);
        Py_DECREF(frame);
        return Timed_finish(self);
    }
    if (direct) {
        PyObject *t = read_now(&self->hot);
        if (t == NULL)
            goto fail;
        int err = on_top(&self->hot, frame) ? close_top(&self->hot, t) : 0;
        Py_DECREF(t);
        if (err < 0 || drain_if_long(&self->hot) < 0)
            goto fail;
    }
    else if (close_wait(self, frame) < 0) {
        goto fail;
    }
    Py_DECREF(frame);
    PyObject *r = PyObject_CallOneArg(self->note, item);
    if (r == NULL) {
        Py_DECREF(item);
        return Timed_finish(self);
    }
    Py_DECREF(r);
    return item;
fail:
    Py_DECREF(frame);
    Py_DECREF(item);
    return Timed_finish(self);
}

static PyTypeObject TimedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "throughput.capture._fastphase.Timed",
    .tp_doc = PyDoc_STR("Timed(rec, iterable, phase, note, drain_at): the items of iterable, each wait for "
                        "one logged as phase (Recorder.iterate without a generator frame)."),
    .tp_basicsize = sizeof(Timed),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Timed_new,
    .tp_dealloc = (destructor)Timed_dealloc,
    .tp_traverse = (traverseproc)Timed_traverse,
    .tp_clear = (inquiry)Timed_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Timed_next,
};

/* split_log(entries, step_end, start) -> (span_names, times, metas, losses, stop) or stop.
 *
 * ``recorder.split_log`` is the contract (this is its body in C, for the drain): from ``start``, the
 * longest run of whole steps that each open and close the same phases one after the other (open a,
 * close, open b, close, ..., step end) as columns: the phases of a step, every entry's time as float64
 * bytes (a bytearray, in log order), the step ends' meta and loss fields, and the index after the run.
 * When the step at ``start`` is not of that kind (nested phases, a phase left open at its end), the
 * index after its end (or the log's length, for a step not ended yet): those entries are replayed one
 * by one. One pass instead of two ``map`` passes, a list comparison and numpy's conversion of a list of
 * floats: on a 2-core Xeon with AMX, ~0.4 us a step of 3 phases in Python. */
static int
entry_ok(PyObject *entry, Py_ssize_t min_size)
{
    return PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) >= min_size;
}

/* The index after the first step end at or after ``i`` (the log's length if none). */
static Py_ssize_t
after_step_end(PyObject *entries, Py_ssize_t i, PyObject *step_end)
{
    Py_ssize_t n = PyList_GET_SIZE(entries);
    for (; i < n; i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i);
        if (entry_ok(entry, 1) && PyTuple_GET_ITEM(entry, 0) == step_end)
            return i + 1;
    }
    return n;
}

/* 1 when the step of ``size`` entries at ``at`` has the heads of the one at ``first``, 0 when not,
 * -1 on an error (a comparison that raised). */
static int
same_step(PyObject *entries, Py_ssize_t first, Py_ssize_t at, Py_ssize_t size, PyObject *step_end)
{
    for (Py_ssize_t j = 0; j < size; j++) {
        PyObject *entry = PyList_GET_ITEM(entries, at + j);
        if (!entry_ok(entry, j == size - 1 ? 4 : 2))
            return 0;
        PyObject *head = PyTuple_GET_ITEM(entry, 0);
        PyObject *want = PyTuple_GET_ITEM(PyList_GET_ITEM(entries, first + j), 0);
        if (head == want)
            continue;
        if (want == Py_None || want == step_end || head == Py_None || head == step_end)
            return 0;
        int same = PyObject_RichCompareBool(head, want, Py_EQ);
        if (same <= 0)
            return same;
    }
    return 1;
}

static PyObject *
split_log(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "split_log(entries, step_end, start) takes 3 arguments");
        return NULL;
    }
    PyObject *entries = args[0], *step_end = args[1];
    if (!PyList_Check(entries)) {
        PyErr_SetString(PyExc_TypeError, "split_log: entries must be a list");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(entries), size = -1;
    if (start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "split_log: start outside the log");
        return NULL;
    }
    for (Py_ssize_t i = start; i < n; i++) {   /* the first step's entries: the pattern */
        PyObject *entry = PyList_GET_ITEM(entries, i);
        if (!entry_ok(entry, 2))
            return PyLong_FromSsize_t(after_step_end(entries, i, step_end));
        PyObject *head = PyTuple_GET_ITEM(entry, 0);
        Py_ssize_t offset = i - start;
        if (head == step_end) {
            if (offset % 2 == 1 || !entry_ok(entry, 4))   /* a phase still open at the step's end */
                return PyLong_FromSsize_t(i + 1);
            size = offset + 1;
            break;
        }
        if ((head == Py_None) != (offset % 2 == 1))   /* opens (not None) at even places, closes at odd */
            return PyLong_FromSsize_t(after_step_end(entries, i, step_end));
    }
    if (size < 0)   /* no step end: a step still running */
        return PyLong_FromSsize_t(n);
    Py_ssize_t steps = 1;
    while (start + (steps + 1) * size <= n) {
        int same = same_step(entries, start, start + steps * size, size, step_end);
        if (same < 0)
            return NULL;
        if (!same)
            break;
        steps++;
    }
    Py_ssize_t phases = size / 2, count = steps * size, stop = start + count;
    PyObject *names = PyTuple_New(phases);
    PyObject *times = PyByteArray_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(double));
    PyObject *metas = PyList_New(steps);
    PyObject *losses = PyList_New(steps);
    if (names == NULL || times == NULL || metas == NULL || losses == NULL)
        goto fail;
    for (Py_ssize_t j = 0; j < phases; j++) {
        PyObject *name = PyTuple_GET_ITEM(PyList_GET_ITEM(entries, start + 2 * j), 0);
        PyTuple_SET_ITEM(names, j, Py_NewRef(name));
    }
    double *out = (double *)PyByteArray_AS_STRING(times);
    for (Py_ssize_t i = 0; i < count; i++) {
        double t = PyFloat_AsDouble(PyTuple_GET_ITEM(PyList_GET_ITEM(entries, start + i), 1));
        if (t == -1.0 && PyErr_Occurred())
            goto fail;
        out[i] = t;
    }
    for (Py_ssize_t k = 0; k < steps; k++) {
        PyObject *end = PyList_GET_ITEM(entries, start + k * size + size - 1);
        PyList_SET_ITEM(metas, k, Py_NewRef(PyTuple_GET_ITEM(end, 2)));
        PyList_SET_ITEM(losses, k, Py_NewRef(PyTuple_GET_ITEM(end, 3)));
    }
    PyObject *stop_obj = PyLong_FromSsize_t(stop);
    if (stop_obj == NULL)
        goto fail;
    PyObject *result = PyTuple_Pack(5, names, times, metas, losses, stop_obj);
    Py_DECREF(stop_obj);
    Py_DECREF(names);
    Py_DECREF(times);
    Py_DECREF(metas);
    Py_DECREF(losses);
    return result;
fail:
    Py_XDECREF(names);
    Py_XDECREF(times);
    Py_XDECREF(metas);
    Py_XDECREF(losses);
    return NULL;
}

/* perf_counter_obj := time.perf_counter when ``time.get_clock_info("perf_counter").implementation`` is
 * ``clock_gettime(CLOCK_MONOTONIC)``; left NULL otherwise (the phases then call it). -1 on an error. */
static int
find_perf_counter(void)
{
    PyObject *time = PyImport_ImportModule("time");
    if (time == NULL)
        return -1;
    PyObject *fn = PyObject_GetAttrString(time, "perf_counter");
    PyObject *info = fn ? PyObject_CallMethod(time, "get_clock_info", "s", "perf_counter") : NULL;
    PyObject *impl = info ? PyObject_GetAttrString(info, "implementation") : NULL;
    Py_DECREF(time);
    Py_XDECREF(info);
    if (impl == NULL) {
        Py_XDECREF(fn);
        return -1;
    }
    int same = PyUnicode_Check(impl) && PyUnicode_CompareWithASCIIString(impl, "clock_gettime(CLOCK_MONOTONIC)") == 0;
    Py_DECREF(impl);
    if (same)
        perf_counter_obj = fn;   /* kept for the module's life */
    else
        Py_DECREF(fn);
    return 0;
}

static PyObject *
module_perf_counter(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    if (perf_counter_obj == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "time.perf_counter is not CLOCK_MONOTONIC here: the phases call it");
        return NULL;
    }
    return monotonic_seconds();
}

static PyMethodDef module_methods[] = {
    {"perf_counter", module_perf_counter, METH_NOARGS,
     "The phases' own reading of time.perf_counter (tests compare the two; RuntimeError where they call it)."},
    {"split_log", (PyCFunction)(void (*)(void))split_log, METH_FASTCALL,
     "split_log(entries, step_end, start, /)\n--\n\nFrom start, the columns of a run of uniform steps, "
     "or where the entries to replay one by one end (see recorder.split_log)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastphase_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "throughput.capture._fastphase",
    .m_doc = "The phase context manager's hot path in C (optional; recorder.RecordedPhase is the fallback).",
    .m_size = -1,
    .m_methods = module_methods,
};

#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC
PyInit__fastphase(void)
{
    INTERN(str_mode, "mode");
    INTERN(str_open, "open");
    INTERN(str_close, "close");
    INTERN(str_close_through, "close_through");
    INTERN(str_drain, "_drain");
    INTERN(str_log, "_log");
    INTERN(str_stack, "_stack");
    INTERN(str_now, "_now");
    if (PyType_Ready(&ModeType) < 0 || PyType_Ready(&PhaseType) < 0 || PyType_Ready(&TimedType) < 0)
        return NULL;
    if (find_perf_counter() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastphase_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Mode", (PyObject *)&ModeType) < 0
            || PyModule_AddObjectRef(m, "Phase", (PyObject *)&PhaseType) < 0
            || PyModule_AddObjectRef(m, "Timed", (PyObject *)&TimedType) < 0
            || PyModule_AddObjectRef(m, "OWN_CLOCK", perf_counter_obj != NULL ? Py_True : Py_False) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
