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

typedef struct {
    PyObject_HEAD
    PyObject *rec;      /* the Recorder */
    PyObject *name;     /* the phase name (str) */
    PyObject *frames;   /* list: the frames this context opened, innermost last (None when stopped) */
    PyObject *log;      /* rec._log */
    PyObject *stack;    /* rec._stack */
    PyObject *now;      /* rec._now: a callable returning seconds (float) */
    PyObject *misuse;   /* misuse(frame, stack) -> exception instance */
    Py_ssize_t drain_at;
} Phase;

static PyObject *str_direct, *str_recording, *str_open, *str_close, *str_drain;
static PyObject *str_log, *str_stack, *str_now;

static int
rec_flag(PyObject *rec, PyObject *attr)
{
    PyObject *v = PyObject_GetAttr(rec, attr);
    if (v == NULL)
        return -1;
    int truth = PyObject_IsTrue(v);
    Py_DECREF(v);
    return truth;
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
    self->log = PyObject_GetAttr(rec, str_log);
    self->stack = self->log ? PyObject_GetAttr(rec, str_stack) : NULL;
    self->now = self->stack ? PyObject_GetAttr(rec, str_now) : NULL;
    if (self->frames == NULL || self->now == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    if (!PyList_Check(self->log) || !PyList_Check(self->stack)) {
        PyErr_SetString(PyExc_TypeError, "the recorder's _log and _stack must be lists");
        Py_DECREF(self);
        return NULL;
    }
    Py_INCREF(rec);
    self->rec = rec;
    Py_INCREF(name);
    self->name = name;
    Py_INCREF(misuse);
    self->misuse = misuse;
    self->drain_at = drain_at;
    return (PyObject *)self;
}

static int
Phase_traverse(Phase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rec);
    Py_VISIT(self->name);
    Py_VISIT(self->frames);
    Py_VISIT(self->log);
    Py_VISIT(self->stack);
    Py_VISIT(self->now);
    Py_VISIT(self->misuse);
    return 0;
}

static int
Phase_clear(Phase *self)
{
    Py_CLEAR(self->rec);
    Py_CLEAR(self->name);
    Py_CLEAR(self->frames);
    Py_CLEAR(self->log);
    Py_CLEAR(self->stack);
    Py_CLEAR(self->now);
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
    int recording = rec_flag(self->rec, str_recording);
    if (recording < 0)
        return NULL;
    PyObject *frame;
    if (recording) {
        frame = PyObject_CallMethodOneArg(self->rec, str_open, self->name);
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

static PyObject *
Phase_enter(Phase *self, PyObject *Py_UNUSED(ignored))
{
    int direct = rec_flag(self->rec, str_direct);
    if (direct < 0)
        return NULL;
    if (!direct)
        return enter_indirect(self);
    PyObject *t = PyObject_CallNoArgs(self->now);
    if (t == NULL)
        return NULL;
    PyObject *frame = PyTuple_Pack(2, self->name, t);
    Py_DECREF(t);
    if (frame == NULL)
        return NULL;
    if (PyList_Append(self->log, frame) < 0 || PyList_Append(self->stack, frame) < 0
            || PyList_Append(self->frames, frame) < 0) {
        Py_DECREF(frame);
        return NULL;
    }
    Py_DECREF(frame);
    if (PyList_GET_SIZE(self->log) > self->drain_at) {
        PyObject *r = PyObject_CallMethodNoArgs(self->rec, str_drain);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
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
Phase_exit(Phase *self, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    PyObject *t = PyObject_CallNoArgs(self->now);   /* first: the phase ends when its body does */
    if (t == NULL)
        return NULL;
    PyObject *frame = pop_frame(self->frames);
    if (frame == NULL && PyErr_Occurred()) {
        Py_DECREF(t);
        return NULL;
    }
    PyObject *result = NULL;
    int direct = rec_flag(self->rec, str_direct);
    if (direct < 0)
        goto done;
    if (!direct) {
        if (frame != NULL && frame != Py_None) {
            int recording = rec_flag(self->rec, str_recording);
            if (recording < 0)
                goto done;
            if (recording) {
                PyObject *r = PyObject_CallMethodOneArg(self->rec, str_close, frame);
                if (r == NULL)
                    goto done;
                Py_DECREF(r);
            }
        }
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t depth = PyList_GET_SIZE(self->stack);
    if (depth > 0 && PyList_GET_ITEM(self->stack, depth - 1) == frame) {
        if (PyList_SetSlice(self->stack, depth - 1, depth, NULL) < 0)
            goto done;
        PyObject *closing = PyTuple_Pack(2, Py_None, t);
        if (closing == NULL)
            goto done;
        int err = PyList_Append(self->log, closing);
        Py_DECREF(closing);
        if (err < 0)
            goto done;
        result = Py_NewRef(Py_None);
    }
    else if (frame != NULL) {
        PyObject *exc = PyObject_CallFunctionObjArgs(self->misuse, frame, self->stack, NULL);
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
    {"_rec", T_OBJECT, offsetof(Phase, rec), READONLY, "the recorder"},
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

/* split_log(entries, step_end) -> (span_names, times, metas, losses) or None.
 *
 * ``recorder.split_log`` is the contract (this is its body in C, for the drain of the common log): when
 * ``entries`` is made of whole steps that each open and close the same phases one after the other
 * (open a, close, open b, close, ..., step end), the phases of a step, every entry's time as float64
 * bytes (a bytearray, in log order), and the step ends' meta and loss fields; None for any other log.
 * One pass over the log instead of two ``map`` passes, a list comparison and numpy's conversion of a
 * list of floats: on a 2-core Xeon with AMX, ~0.4 us a step of 3 phases in Python. */
static int
entry_ok(PyObject *entry, Py_ssize_t min_size)
{
    return PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) >= min_size;
}

static PyObject *
split_log(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "split_log(entries, step_end) takes 2 arguments");
        return NULL;
    }
    PyObject *entries = args[0], *step_end = args[1];
    if (!PyList_Check(entries)) {
        PyErr_SetString(PyExc_TypeError, "split_log: entries must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(entries), size = -1;
    for (Py_ssize_t i = 0; i < n; i++) {   /* the first step's entries: the pattern */
        PyObject *entry = PyList_GET_ITEM(entries, i);
        if (!entry_ok(entry, 2))
            Py_RETURN_NONE;
        PyObject *head = PyTuple_GET_ITEM(entry, 0);
        if (head == step_end) {
            size = i + 1;
            break;
        }
        if ((head == Py_None) != (i % 2 == 1))   /* opens (not None) at even places, closes (None) at odd */
            Py_RETURN_NONE;
    }
    if (size < 0 || size % 2 == 0 || n % size != 0)
        Py_RETURN_NONE;
    Py_ssize_t steps = n / size, phases = size / 2;
    for (Py_ssize_t i = size; i < n; i++) {   /* every later step repeats it (names compared by ==) */
        PyObject *entry = PyList_GET_ITEM(entries, i);
        if (!entry_ok(entry, 2))
            Py_RETURN_NONE;
        PyObject *head = PyTuple_GET_ITEM(entry, 0);
        PyObject *want = PyTuple_GET_ITEM(PyList_GET_ITEM(entries, i % size), 0);
        if (head != want) {
            if (want == Py_None || want == step_end || head == Py_None || head == step_end)
                Py_RETURN_NONE;
            int same = PyObject_RichCompareBool(head, want, Py_EQ);
            if (same < 0)
                return NULL;
            if (!same)
                Py_RETURN_NONE;
        }
    }
    for (Py_ssize_t k = size - 1; k < n; k += size) {
        if (!entry_ok(PyList_GET_ITEM(entries, k), 4))
            Py_RETURN_NONE;
    }
    PyObject *names = PyTuple_New(phases);
    PyObject *times = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(double));
    PyObject *metas = PyList_New(steps);
    PyObject *losses = PyList_New(steps);
    if (names == NULL || times == NULL || metas == NULL || losses == NULL)
        goto fail;
    for (Py_ssize_t j = 0; j < phases; j++) {
        PyObject *name = PyTuple_GET_ITEM(PyList_GET_ITEM(entries, 2 * j), 0);
        PyTuple_SET_ITEM(names, j, Py_NewRef(name));
    }
    double *out = (double *)PyByteArray_AS_STRING(times);
    for (Py_ssize_t i = 0; i < n; i++) {
        double t = PyFloat_AsDouble(PyTuple_GET_ITEM(PyList_GET_ITEM(entries, i), 1));
        if (t == -1.0 && PyErr_Occurred())
            goto fail;
        out[i] = t;
    }
    for (Py_ssize_t k = 0; k < steps; k++) {
        PyObject *end = PyList_GET_ITEM(entries, k * size + size - 1);
        PyList_SET_ITEM(metas, k, Py_NewRef(PyTuple_GET_ITEM(end, 2)));
        PyList_SET_ITEM(losses, k, Py_NewRef(PyTuple_GET_ITEM(end, 3)));
    }
    PyObject *result = PyTuple_Pack(4, names, times, metas, losses);
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

static PyMethodDef module_methods[] = {
    {"split_log", (PyCFunction)(void (*)(void))split_log, METH_FASTCALL,
     "split_log(entries, step_end, /)\n--\n\nThe drain's columns of a log of uniform steps, or None "
     "(see recorder.split_log)."},
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
    INTERN(str_direct, "direct");
    INTERN(str_recording, "recording");
    INTERN(str_open, "open");
    INTERN(str_close, "close");
    INTERN(str_drain, "_drain");
    INTERN(str_log, "_log");
    INTERN(str_stack, "_stack");
    INTERN(str_now, "_now");
    if (PyType_Ready(&PhaseType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastphase_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Phase", (PyObject *)&PhaseType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
