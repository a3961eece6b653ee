/* Graph: one call of all/all_settled/flow, and the awaitable it returns.
 *
 * The first send starts every node in mapping order, each until its first
 * suspension, then drains the ready queue.  If every node has finished by
 * then, the await returns without the caller suspending.  Otherwise the
 * caller waits on one asyncio Future, resolved when the last node finishes.
 *
 * The outcome is decided once (graph_decide): the first failure (all,
 * flow), the first _end (flow), the deadline, or the caller's cancellation
 * aborts the signal and then cancels every node still running; the call
 * returns only when all of them have finished.
 *
 * The ready queue holds nodes to resume, in order; graph_drain() steps them
 * one at a time in a loop, so a chain of 100k waits never recurses.
 */
#ifndef BETTERALL_GRAPH_H
#define BETTERALL_GRAPH_H

#include "state.h"

static void
graph_enqueue(GraphObject *g, NodeObject *node)
{
    BA_ASSERT(node->graph == g);
    BA_ASSERT(g->ready_len <= g->ready_cap);
    if (node->queued || node->state == NODE_DONE) {
        return;
    }
    if (g->ready_len == g->ready_cap) {
        Py_ssize_t cap = g->ready_cap ? 2 * g->ready_cap : 16;
        NodeObject **q = PyMem_Malloc(cap * sizeof(NodeObject *));
        if (q == NULL) {
            /* Out of memory: fall back to the loop for this one. */
            PyErr_Clear();
            node_resume_soon_alone(node);
            return;
        }
        for (Py_ssize_t i = 0; i < g->ready_len; i++) {
            q[i] = g->ready[(g->ready_head + i) % (g->ready_cap ? g->ready_cap : 1)];
        }
        PyMem_Free(g->ready);
        g->ready = q;
        g->ready_cap = cap;
        g->ready_head = 0;
    }
    g->ready[(g->ready_head + g->ready_len) % g->ready_cap] = node;
    g->ready_len++;
    node->queued = 1;
}


static int
graph_drain(GraphObject *g)
{
    if (g->draining) {
        return 0; /* the drain already running will get to it */
    }
    g->draining = 1;
    Py_INCREF(g);
    int rc = 0;
    while (g->ready_len > 0) {
        NodeObject *node = g->ready[g->ready_head];
        g->ready_head = (g->ready_head + 1) % g->ready_cap;
        g->ready_len--;
        node->queued = 0;
        if (node->state == NODE_DONE) {
            continue;
        }
        Py_INCREF(node);
        rc = node_step(node);
        Py_DECREF(node);
        if (rc < 0) {
            break;
        }
    }
    g->draining = 0;
    if (graph_swap_out(g) < 0) {
        rc = -1;
    }
    if (rc < 0 && g->ready_len > 0) {
        /* Stopped by an error (KeyboardInterrupt, SystemExit, or an internal
         * one): the rest of the queue runs from the loop, if it runs. */
        PyObject *exc = ba_fetch_exc();
        if (graph_schedule_drain(g) < 0) {
            PyErr_WriteUnraisable((PyObject *)g);
        }
        ba_restore_exc(exc);
    }
    if (rc == 0 && g->remaining == 0) {
        rc = graph_complete(g);
    }
    Py_DECREF(g);
    return rc;
}

/* The loop callback that resumes every node that yielded to the loop
 * (a bare yield) since it was scheduled. */
static PyObject *
graph_soon_cb(PyObject *self, PyObject *Py_UNUSED(arg))
{
    GraphObject *g = (GraphObject *)self;
    Py_ssize_t n = g->soon_len;
    g->soon_len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        graph_enqueue(g, g->soon[i]);
    }
    if (graph_drain(g) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef graph_soon_def = {"_resume_soon", graph_soon_cb, METH_O, NULL};

static int
graph_push_soon(GraphObject *g, NodeObject *node)
{
    if (g->soon_len == g->soon_cap) {
        Py_ssize_t cap = g->soon_cap ? 2 * g->soon_cap : 16;
        NodeObject **q = PyMem_Realloc(g->soon, cap * sizeof(NodeObject *));
        if (q == NULL) {
            PyErr_Clear();
            node_resume_soon_alone(node);
            return 0;
        }
        g->soon = q;
        g->soon_cap = cap;
    }
    g->soon[g->soon_len++] = node;
    if (g->soon_len == 1) {
        /* First of a batch: one loop callback resumes them all. */
        if (g->soon_cb == NULL) {
            g->soon_cb = PyCFunction_New(&graph_soon_def, (PyObject *)g);
            if (g->soon_cb == NULL) {
                g->soon_len--;
                return -1;
            }
        }
        if (call_soon(g, g->soon_cb, Py_None, NULL) < 0) {
            g->soon_len--;
            return -1;
        }
    }
    return 0;
}

static PyObject *
graph_drain_cb(PyObject *self, PyObject *Py_UNUSED(arg))
{
    if (graph_drain((GraphObject *)self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef graph_drain_def = {"_drain", graph_drain_cb, METH_O, NULL};

/* Make sure the ready queue gets drained: now if a drain is running (it
 * will get there), else from the loop. */
static int
graph_schedule_drain(GraphObject *g)
{
    if (g->draining || g->ready_len == 0 || g->loop == NULL) {
        return 0;
    }
    if (g->drain_cb == NULL) {
        g->drain_cb = PyCFunction_New(&graph_drain_def, (PyObject *)g);
        if (g->drain_cb == NULL) {
            return -1;
        }
    }
    return call_soon(g, g->drain_cb, Py_None, NULL);
}

/* Every node has finished: stop the timer, wake the caller. */
static int
graph_complete(GraphObject *g)
{
    mod_state *st = g->mst;
    if (g->report != NULL && g->t_end == 0.0) {
        g->t_end = ba_now(st);
    }
    /* The callbacks below refer back to the graph: drop them now, so a
     * finished call holds no reference cycle. */
    Py_CLEAR(g->drain_cb);
    Py_CLEAR(g->soon_cb);
    Py_CLEAR(g->caller);
    if (g->timer != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(g->timer, st->s_cancel);
        Py_CLEAR(g->timer);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    if (g->done_fut != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(g->done_fut, st->s_done);
        if (r == NULL) {
            return -1;
        }
        int done = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (!done) {
            r = PyObject_CallMethodOneArg(g->done_fut, st->s_set_result, Py_None);
            if (r == NULL) {
                return -1;
            }
            Py_DECREF(r);
        }
    }
    return 0;
}

/* -- current task swaps ----------------------------------------------------- */

/* The first batch of a call runs in its caller's step (graph_start): the
 * task it swaps out is the caller, kept for node_get_awaited_by. */
static inline void
graph_note_caller(GraphObject *g)
{
    if (g->caller == NULL) {
        g->caller = Py_NewRef(g->outer);
    }
}

/* Make `node` asyncio's current task for its step.
 *
 * Swaps are batched: the first swap of a batch (a run of steps in
 * graph_start or graph_drain) keeps the task it swapped out in g->outer,
 * later ones replace the previous node directly, and graph_swap_out()
 * puts g->outer back once, at the end of the batch.  No user code runs
 * between two steps of a batch, so nobody sees the difference. */
static int
graph_swap_in(GraphObject *g, NodeObject *node)
{
    mod_state *st = g->mst;
    if (g->current == node) {
        return 0;
    }
    int first = g->current == NULL; /* the batch's first swap sets g->outer */
    if (st->current_tasks != NULL) {
        /* What _swap_current_task does, as one store into asyncio's table
         * (it replaces the current task without asking it to leave first,
         * on 3.11 as well, where _enter_task would refuse). */
        if (first) {
            PyObject *prev = PyDict_GetItemWithError(st->current_tasks, g->loop);
            if (prev == NULL && PyErr_Occurred()) {
                return -1;
            }
            g->outer = Py_NewRef(prev != NULL ? prev : Py_None);
        }
        if (PyDict_SetItem(st->current_tasks, g->loop, (PyObject *)node) < 0) {
            if (first) {
                Py_CLEAR(g->outer);
            }
            return -1;
        }
    }
    else {
#if BA_HAVE_SWAP_CURRENT_TASK
        PyObject *args[2] = {g->loop, (PyObject *)node};
        PyObject *prev = PyObject_Vectorcall(st->swap_current_task, args, 2, NULL);
        if (prev == NULL) {
            return -1;
        }
        if (first) {
            g->outer = prev;
        }
        else {
            Py_DECREF(prev);
        }
#else
        /* 3.11 refuses to enter a task while another one is current:
         * leave the current one first. */
        PyObject *args[2] = {g->loop, NULL};
        if (first) {
            PyObject *prev = PyObject_CallOneArg(st->current_task, g->loop);
            if (prev == NULL) {
                return -1;
            }
            g->outer = prev;
            args[1] = prev;
        }
        else {
            args[1] = (PyObject *)g->current;
        }
        if (args[1] != Py_None) {
            PyObject *r = PyObject_Vectorcall(st->leave_task, args, 2, NULL);
            if (r == NULL) {
                if (first) {
                    Py_CLEAR(g->outer);
                }
                return -1;
            }
            Py_DECREF(r);
        }
        args[1] = (PyObject *)node;
        PyObject *r = PyObject_Vectorcall(st->enter_task, args, 2, NULL);
        if (r == NULL) {
            /* Nobody is current now: put the outer task back. */
            PyObject *outer = g->outer;
            g->outer = NULL;
            g->current = NULL;
            if (outer != NULL && outer != Py_None) {
                PyObject *exc = ba_fetch_exc();
                args[1] = outer;
                PyObject *r2 = PyObject_Vectorcall(st->enter_task, args, 2, NULL);
                Py_XDECREF(r2);
                PyErr_Clear();
                ba_restore_exc(exc);
            }
            Py_XDECREF(outer);
            return -1;
        }
        Py_DECREF(r);
#endif
    }
    g->current = node;
    if (first) {
        graph_note_caller(g);
    }
    return 0;
}

/* Make `outer` current again by calling asyncio's functions (where there
 * is no table to write, see graph_swap_in).  0 or -1. */
static int
swap_out_calls(GraphObject *g, PyObject *outer)
{
    mod_state *st = g->mst;
#if BA_HAVE_SWAP_CURRENT_TASK
    PyObject *args[2] = {g->loop, outer};
    PyObject *r = PyObject_Vectorcall(st->swap_current_task, args, 2, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
#else
    PyObject *args[2] = {g->loop, (PyObject *)g->current};
    PyObject *r = PyObject_Vectorcall(st->leave_task, args, 2, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    if (outer != Py_None) {
        args[1] = outer;
        r = PyObject_Vectorcall(st->enter_task, args, 2, NULL);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
#endif
    return 0;
}

/* End a batch of steps: make the task swapped out by its first step current
 * again.  Keeps an exception that is set. */
static int
graph_swap_out(GraphObject *g)
{
    if (g->current == NULL) {
        return 0;
    }
    mod_state *st = g->mst;
    PyObject *exc = PyErr_Occurred() ? ba_fetch_exc() : NULL;
    PyObject *outer = g->outer;
    g->outer = NULL;
    int rc = 0;
    if (st->current_tasks == NULL) {
        rc = swap_out_calls(g, outer);
    }
    else if (outer != Py_None) {
        rc = PyDict_SetItem(st->current_tasks, g->loop, outer);
    }
    else if (PyDict_DelItem(st->current_tasks, g->loop) < 0) {
        /* Already gone (user code can write the table too): nobody is
         * current, as wanted. */
        if (PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
        }
        else {
            rc = -1;
        }
    }
    g->current = NULL;
    Py_XDECREF(outer);
    if (exc != NULL) {
        if (rc < 0) {
            PyErr_Clear();
        }
        ba_restore_exc(exc);
        return -1;
    }
    return rc;
}

/* Tracing: when a node starts.  Nodes start one after another in the
 * graph's first step (graph_start), and when the node stepped just before
 * ended in that step, only the engine's own bookkeeping ran since: its end
 * is this start, and the clock is read once per synchronous task instead of
 * twice.  graph_start keeps the mark only in that case. */
static inline double
graph_start_time(GraphObject *g)
{
    if (g->has_mark) {
        g->has_mark = 0;
        return g->t_mark;
    }
    return ba_now(g->mst);
}

/* -- deciding the outcome --------------------------------------------------- */

static int
graph_abort_signal(GraphObject *g, PyObject *reason)
{
    if (g->abort_reason != NULL) {
        return 0;
    }
    g->abort_reason = Py_NewRef(reason);
    if (g->signal != NULL) {
        PyObject *r = PyObject_CallMethodOneArg(g->signal, g->mst->s_abort, reason);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    return 0;
}

static PyObject *
graph_get_signal(GraphObject *g)
{
    if (g->signal == NULL) {
        PyObject *sig = PyObject_CallNoArgs(g->mst->Signal);
        if (sig == NULL) {
            return NULL;
        }
        if (g->abort_reason != NULL) {
            PyObject *r = PyObject_CallMethodOneArg(sig, g->mst->s_abort, g->abort_reason);
            if (r == NULL) {
                Py_DECREF(sig);
                return NULL;
            }
            Py_DECREF(r);
        }
        g->signal = sig;
    }
    return Py_NewRef(g->signal);
}

/* Cancel every node still running (but `except`); nodes not started yet
 * are finished as cancelled without ever being called.  Each node is
 * cancelled once, as asyncio.TaskGroup cancels its children: one the graph
 * has cancelled already is left to its clean-up (an `except
 * CancelledError:` or `finally:` that awaits), whatever happens to the
 * call meanwhile (the caller cancelled again, a timeout, a late failure). */
static int
graph_cancel_running(GraphObject *g, NodeObject *except)
{
    int rc = 0;
    for (Py_ssize_t i = 0; i < g->n; i++) {
        NodeObject *node = g->nodes[i];
        if (node->state == NODE_DONE || node == except || node->cancelled_by_graph) {
            continue;
        }
        node->cancelled_by_graph = 1;
        Py_INCREF(node);
        if (node->state == NODE_PENDING) {
            if (node_finish(node, STATUS_CANCELLED, NULL, NULL) < 0) {
                rc = -1;
            }
        }
        else {
            int r = node_cancel(node, NULL);
            if (r < 0) {
                rc = -1;
            }
            else if (r > 0 && !node->must_cancel) {
                node->stop_pending = 1;
            }
        }
        Py_DECREF(node);
    }
    return rc;
}

static int
graph_decide(GraphObject *g, PyObject *reason, NodeObject *except)
{
    g->decided = 1;
    /* The signal first: a task sees `aborted` when its cancellation lands. */
    if (graph_abort_signal(g, reason) < 0) {
        return -1;
    }
    return graph_cancel_running(g, except);
}

static int
graph_fail(GraphObject *g, NodeObject *node, PyObject *err)
{
    (void)node;
    if (g->mode == MODE_SETTLED || g->decided) {
        return 0;
    }
    g->error = Py_NewRef(err);
    return graph_decide(g, err, NULL);
}

static int
graph_end(GraphObject *g, NodeObject *node, PyObject *value, PyObject *reason)
{
    if (g->decided) {
        return 0;
    }
    node->ended = 1;
    Py_XSETREF(g->end_value, Py_NewRef(value));
    return graph_decide(g, reason, node);
}

static PyObject *
graph_on_timeout(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    GraphObject *g = (GraphObject *)self;
    Py_CLEAR(g->timer);
    if (g->decided || g->remaining == 0) {
        Py_RETURN_NONE;
    }
    char *secs = PyOS_double_to_string(g->timeout, 'g', 6, 0, NULL);
    if (secs == NULL) {
        return NULL;
    }
    PyObject *msg = PyUnicode_FromFormat("%s() timed out after %s s",
                                         mode_names[g->mode], secs);
    PyMem_Free(secs);
    if (msg == NULL) {
        return NULL;
    }
    PyObject *err = PyObject_CallOneArg(PyExc_TimeoutError, msg);
    Py_DECREF(msg);
    if (err == NULL) {
        return NULL;
    }
    int rc;
    if (g->mode == MODE_SETTLED) {
        for (Py_ssize_t i = 0; i < g->n; i++) {
            if (g->nodes[i]->state != NODE_DONE) {
                g->nodes[i]->timed_out = 1;
            }
        }
        rc = graph_decide(g, err, NULL);
    }
    else {
        g->error = Py_NewRef(err);
        rc = graph_decide(g, err, NULL);
    }
    Py_DECREF(err);
    if (rc < 0 || graph_drain(g) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef graph_timeout_def = {"_on_timeout", graph_on_timeout, METH_NOARGS, NULL};

/* -- the result ----------------------------------------------------------- */

static PyObject *
status_name(mod_state *st, int status)
{
    switch (status) {
    case STATUS_FULFILLED: return st->s_fulfilled;
    case STATUS_REJECTED: return st->s_rejected;
    case STATUS_ENDED: return st->s_ended;
    default: return st->s_cancelled;
    }
}

/* Untrack a tuple of exact strs, floats, or such tuples (a trace's deps or
 * waits); 1 if it was, 0 if it holds anything else. */
static int
untrack_atomic_tuple(PyObject *t)
{
    if (PyTuple_GET_SIZE(t) == 0) {
        return 1; /* the empty tuple: never tracked (most tasks have no deps) */
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++) {
        PyObject *x = PyTuple_GET_ITEM(t, i);
        if (PyTuple_CheckExact(x) ? !untrack_atomic_tuple(x)
                                  : !PyUnicode_CheckExact(x) && !PyFloat_CheckExact(x)) {
            return 0;
        }
    }
    if (PyObject_GC_IsTracked(t)) {
        PyObject_GC_UnTrack(t);
    }
    return 1;
}

/* A node's deps or waits as the tuple of its trace: the slot holds
 * nothing, the one item itself, or a list or a dict (an ordered set) of
 * them (see sibling.h). */
static PyObject *
trace_tuple(PyObject *slot)
{
    if (slot == NULL) {
        return PyTuple_New(0);
    }
    if (PyList_CheckExact(slot)) {
        return PyList_AsTuple(slot);
    }
    if (PyDict_CheckExact(slot)) {
        return PySequence_Tuple(slot);
    }
    return PyTuple_Pack(1, slot);
}

static int
graph_report(GraphObject *g, int failing)
{
    mod_state *st = g->mst;
    PyTypeObject *tt = (PyTypeObject *)st->TaskTrace;
    int tuple_like = PyType_Check(st->TaskTrace) && PyType_IsSubtype(tt, &PyTuple_Type);
    /* The private copy of the caller's dict has every name in order: a copy
     * of it only has its values replaced, never grows. */
    PyObject *tasks = g->tasks != NULL ? PyDict_Copy(g->tasks) : PyDict_New();
    if (tasks == NULL) {
        return -1;
    }
    /* A node that started when the one before it ended (see
     * graph_start_time) shares that float. */
    PyObject *prev_end = NULL;
    for (Py_ssize_t i = 0; i < g->n; i++) {
        NodeObject *node = g->nodes[i];
        PyObject *item[6] = {
            Py_NewRef(node->name),
            prev_end != NULL && PyFloat_AS_DOUBLE(prev_end) == node->t_start
                ? Py_NewRef(prev_end)
                : PyFloat_FromDouble(node->t_start),
            PyFloat_FromDouble(node->t_end),
            Py_NewRef(node->fell_back ? st->s_fallback : status_name(st, node->status)),
            trace_tuple(node->deps),
            trace_tuple(node->waits),
        };
        Py_XSETREF(prev_end, Py_XNewRef(item[2]));
        PyObject *tr = NULL;
        if (item[1] && item[2] && item[4] && item[5]) {
            if (tuple_like) {
                /* TaskTrace is a named tuple whose __new__ only makes
                 * tuples of its arguments: fill one in directly, as
                 * tuple.__new__ does for a subclass. */
                tr = tt->tp_alloc(tt, 6);
                for (int k = 0; tr != NULL && k < 6; k++) {
                    PyTuple_SET_ITEM(tr, k, item[k]); /* the reference moves */
                    item[k] = NULL;
                }
                if (tr != NULL && PyUnicode_CheckExact(node->name) &&
                    untrack_atomic_tuple(PyTuple_GET_ITEM(tr, 4)) &&
                    untrack_atomic_tuple(PyTuple_GET_ITEM(tr, 5))) {
                    /* Only strings and floats inside: no cycle can pass
                     * through it, so, as the collector itself does with such
                     * tuples, leave it out of the collections that tracing's
                     * allocations bring on. */
                    PyObject_GC_UnTrack(tr);
                }
            }
            else {
                tr = PyObject_Vectorcall(st->TaskTrace, item, 6, NULL);
            }
        }
        for (int k = 0; k < 6; k++) {
            Py_XDECREF(item[k]);
        }
        if (tr == NULL || PyDict_SetItem(tasks, node->name, tr) < 0) {
            Py_XDECREF(tr);
            Py_XDECREF(prev_end);
            Py_DECREF(tasks);
            return -1;
        }
        Py_DECREF(tr);
    }
    Py_XDECREF(prev_end);
    double end = g->t_end != 0.0 ? g->t_end : ba_now(st);
    PyObject *trace = PyObject_CallMethod(st->Trace, "_adopt", "ddO", g->t_start, end, tasks);
    Py_DECREF(tasks);
    if (trace == NULL) {
        return -1;
    }
    PyObject *r = PyObject_CallFunction(st->report, "OOO", trace, g->report,
                                        failing ? Py_True : Py_False);
    Py_DECREF(trace);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static PyObject *
make_settled(mod_state *st, NodeObject *node)
{
    PyObject *args[3];
    PyObject *tmp = NULL;
    if (node->timed_out) {
        PyObject *msg = PyUnicode_FromFormat("task %R was still running at the deadline",
                                             node->name);
        if (msg == NULL) {
            return NULL;
        }
        tmp = PyObject_CallOneArg(PyExc_TimeoutError, msg);
        Py_DECREF(msg);
        if (tmp == NULL) {
            return NULL;
        }
        args[0] = st->s_rejected; args[1] = Py_None; args[2] = tmp;
    }
    else if (node->status == STATUS_FULFILLED) {
        args[0] = st->s_fulfilled; args[1] = node->result ? node->result : Py_None;
        args[2] = Py_None;
    }
    else if (node->status == STATUS_REJECTED) {
        args[0] = st->s_rejected; args[1] = Py_None; args[2] = node->error;
    }
    else {
        tmp = PyObject_CallNoArgs(st->CancelledError);
        if (tmp == NULL) {
            return NULL;
        }
        args[0] = st->s_rejected; args[1] = Py_None; args[2] = tmp;
    }
    PyObject *r = PyObject_Vectorcall(st->Settled, args, 3, NULL);
    Py_XDECREF(tmp);
    return r;
}

/* Let the collector see the nodes, and what graph_add_node and
 * untrack_while_running left out of its walks while the graph ran inside
 * its caller's step.  Once per graph; its callers say why there. */
static void
graph_track_nodes(GraphObject *g)
{
    if (g->nodes_tracked) {
        return;
    }
    g->nodes_tracked = 1;
    for (Py_ssize_t i = 0; i < g->n; i++) {
        node_track(g->nodes[i]);
    }
    track_again(g->spare_ctx);
    /* The private dicts too: an untracked container in a cycle would hide
     * the cycle from the collector. */
    track_again(g->names);
    track_again(g->tasks);
}

static void
graph_set_finished(GraphObject *g)
{
    g->finished = 1;
    Py_CLEAR(g->mst->stop_iter); /* it may hold a result of this call */
    graph_track_nodes(g); /* the call is over: see graph_result */
}


/* All nodes are done: the call's value (new reference), or NULL with its
 * error raised. */
static PyObject *
graph_result(GraphObject *g)
{
    g->finished = 1;
    Py_CLEAR(g->mst->stop_iter); /* it may hold a result of this call */
    PyObject *r = graph_result_impl(g);
    /* The call is over, and the graph may live on in a reference cycle (its
     * error's traceback holds a frame that holds the graph, as with
     * `await asyncio.wait_for(ba.all(...), t)`).  Last: the result, the
     * Settled objects and the trace allocate enough to start a collection,
     * which would walk every node for nothing before this point. */
    graph_track_nodes(g);
    return r;
}

static PyObject *
graph_result_impl(GraphObject *g)
{
    mod_state *st = g->mst;
    PyObject *error = g->caller_exc ? g->caller_exc : g->error;
    if (g->report != NULL && g->n > 0) {
        if (graph_report(g, error != NULL) < 0) {
            if (error == NULL) {
                return NULL;
            }
            PyErr_Clear();
        }
    }
    if (error != NULL) {
        if (PyErr_GivenExceptionMatches(error, PyExc_StopIteration)) {
            /* As from a coroutine (PEP 479): a StopIteration escaping the
             * await would read as a return to whoever steps us. */
            PyObject *rt = PyObject_CallFunction(PyExc_RuntimeError, "s",
                                                 "coroutine raised StopIteration");
            if (rt == NULL) {
                return NULL;
            }
            PyException_SetCause(rt, Py_NewRef(error));
            PyException_SetContext(rt, Py_NewRef(error));
            ba_raise(rt);
            Py_DECREF(rt);
            return NULL;
        }
        ba_raise(error);
        return NULL;
    }
    if (g->mode == MODE_FLOW) {
        return Py_NewRef(g->end_value ? g->end_value : Py_None);
    }
    /* Our private copy of the caller's dict already has every key in
     * order: only the values change, with no resizing.  Otherwise a new
     * dict. */
    PyObject *out = g->tasks;
    g->tasks = NULL;
    if (g->names == out) {
        Py_CLEAR(g->names); /* the result's own from now on */
    }
    if (out == NULL) {
        out = g->bind_result ? PyObject_CallNoArgs(g->bind_result) : PyDict_New();
    }
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < g->n; i++) {
        NodeObject *node = g->nodes[i];
        PyObject *v;
        if (g->mode == MODE_ALL) {
            v = Py_NewRef(node->result ? node->result : Py_None);
        }
        else if ((v = make_settled(st, node)) == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        int r = PyDict_SetItem(out, node->name, v);
        Py_DECREF(v);
        if (r < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
#if PY_VERSION_HEX >= 0x030E0000
    /* The copy was kept from the collector while the graph ran
     * (untrack_while_running); it leaves the graph here, so graph_track_nodes
     * will not see it.  Before 3.14 inserting a container tracks a dict
     * again by itself (and a dict of atoms rightly stays untracked); 3.14
     * dropped that, and an untracked result in a cycle (a traceback's frame
     * that holds it) was never freed. */
    track_again(out);
#endif
    return out;
}

/* -- the awaitable protocol ------------------------------------------------- */

static int
graph_start(GraphObject *g)
{
    mod_state *st = g->mst;
    g->started = 1;
    g->loop = PyObject_CallNoArgs(st->get_running_loop);
    if (g->loop == NULL) {
        return -1;
    }
    if (g->report != NULL) {
        g->t_start = ba_now(st);
        g->t_mark = g->t_start; /* the first node starts now */
        g->has_mark = 1;
    }
    if (g->has_timeout) {
        PyObject *cb = PyCFunction_New(&graph_timeout_def, (PyObject *)g);
        if (cb == NULL) {
            return -1;
        }
        PyObject *delay = PyFloat_FromDouble(g->timeout);
        if (delay == NULL) {
            Py_DECREF(cb);
            return -1;
        }
        PyObject *args[3] = {g->loop, delay, cb};
        g->timer = PyObject_VectorcallMethod(st->s_call_later, args, 3, NULL);
        Py_DECREF(delay);
        Py_DECREF(cb);
        if (g->timer == NULL) {
            return -1;
        }
    }
    /* Start every node in order; wake-ups wait in the ready queue until all
     * have started, as JavaScript's microtasks wait for the synchronous
     * part.  A decision taken meanwhile finishes the nodes not started. */
    g->draining = 1;
    for (Py_ssize_t i = 0; i < g->n; i++) {
        NodeObject *node = g->nodes[i];
        if (node->state != NODE_PENDING) {
            continue;
        }
        int rc = node_step(node);
        if (node->state != NODE_DONE || !g->has_mark || g->t_mark != node->t_end) {
            /* Only the end of the node just stepped, if it ended, stands
             * for the next node's start (see graph_start_time). */
            g->has_mark = 0;
        }
        if (rc < 0) {
            g->draining = 0;
            (void)graph_swap_out(g);
            if (g->ready_len > 0) {
                PyObject *exc = ba_fetch_exc();
                if (graph_schedule_drain(g) < 0) {
                    PyErr_WriteUnraisable((PyObject *)g);
                }
                ba_restore_exc(exc);
            }
            return -1;
        }
    }
    g->draining = 0;
    /* The drain continues the batch of current-task swaps and ends it. */
    return graph_drain(g);
}

static PySendResult
graph_wait(GraphObject *g, PyObject **result)
{
    mod_state *st = g->mst;
    if (g->done_fut != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(g->done_fut, st->s_done);
        if (r == NULL) {
            *result = NULL;
            return PYGEN_ERROR;
        }
        int done = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (done) {
            Py_CLEAR(g->done_fut);
        }
    }
    if (g->done_fut == NULL) {
        g->done_fut = PyObject_CallMethodNoArgs(g->loop, st->s_create_future);
        if (g->done_fut == NULL) {
            *result = NULL;
            return PYGEN_ERROR;
        }
    }
    if (PyObject_SetAttr(g->done_fut, st->s_blocking, Py_True) < 0) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    /* The caller suspends: from here it and the graph may be abandoned in
     * a cycle through the futures the tasks wait on (a task nobody
     * references, waiting on a future nobody resolves), which the
     * collector must be able to free, as it frees an abandoned
     * asyncio.Task. */
    graph_track_nodes(g);
    g->has_mark = 0; /* stale once the caller waits */
    *result = Py_NewRef(g->done_fut);
    return PYGEN_NEXT;
}

static PySendResult
graph_am_send(PyObject *self, PyObject *arg, PyObject **result)
{
    GraphObject *g = (GraphObject *)self;
    (void)arg;
    if (g->finished) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse an already awaited betterall call");
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (!g->started) {
        if (g->n == 0) {
            g->started = 1;
        }
        else if (graph_start(g) < 0) {
            graph_set_finished(g);
            *result = NULL;
            return PYGEN_ERROR;
        }
    }
    if (g->remaining > 0) {
        return graph_wait(g, result);
    }
    *result = graph_result(g);
    return *result ? PYGEN_RETURN : PYGEN_ERROR;
}

static PyObject *
graph_iternext(PyObject *self)
{
    PyObject *result;
    PySendResult r = graph_am_send(self, Py_None, &result);
    return send_result_to_iter(r, result, 1);
}

static PyObject *
graph_send(PyObject *self, PyObject *arg)
{
    PyObject *result;
    PySendResult r = graph_am_send(self, arg, &result);
    return send_result_to_iter(r, result, 0);
}

/* An exception thrown into the awaiting caller (its cancellation): cancel
 * every node, wait for them all, then raise it. */
static PyObject *
graph_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    GraphObject *g = (GraphObject *)self;
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    PyObject *exc;
    if (PyExceptionInstance_Check(args[0])) {
        exc = Py_NewRef(args[0]);
    }
    else if (PyExceptionClass_Check(args[0])) {
        exc = (nargs > 1 && args[1] != Py_None)
            ? (PyExceptionInstance_Check(args[1]) ? Py_NewRef(args[1])
                                                  : PyObject_CallOneArg(args[0], args[1]))
            : PyObject_CallNoArgs(args[0]);
        if (exc == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
        return NULL;
    }
    if (!g->started || g->finished || g->remaining == 0) {
        if (!g->started) {
            g->started = 1;
            /* Nothing ran: the nodes never start. */
            for (Py_ssize_t i = 0; i < g->n; i++) {
                g->nodes[i]->state = NODE_DONE;
                g->nodes[i]->status = STATUS_CANCELLED;
            }
            g->remaining = 0;
        }
        graph_set_finished(g);
        ba_raise(exc);
        Py_DECREF(exc);
        return NULL;
    }
    if (g->caller_exc == NULL) {
        g->caller_exc = Py_NewRef(exc);
    }
    int rc;
    if (!g->decided) {
        rc = graph_decide(g, exc, NULL);
    }
    else {
        /* Cancelled again: the tasks the graph has cancelled already are
         * not cancelled twice (graph_cancel_running); one it has not (a
         * flow's winner that swallowed its FlowEnd) is cancelled now. */
        rc = graph_cancel_running(g, NULL);
    }
    Py_DECREF(exc);
    if (rc < 0 || graph_drain(g) < 0) {
        return NULL;
    }
    PyObject *result;
    PySendResult r;
    if (g->remaining > 0) {
        r = graph_wait(g, &result);
    }
    else {
        result = graph_result(g);
        r = result ? PYGEN_RETURN : PYGEN_ERROR;
    }
    return send_result_to_iter(r, result, 0);
}

static PyObject *
graph_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    GraphObject *g = (GraphObject *)self;
    if (g->started && !g->finished && g->remaining > 0) {
        /* The awaiting coroutine is being closed: nobody will wait for the
         * nodes, so stop them as far as possible. */
        PyObject *exc = PyObject_CallNoArgs(g->mst->CancelledError);
        if (exc == NULL) {
            return NULL;
        }
        if (g->caller_exc == NULL) {
            g->caller_exc = Py_NewRef(exc);
        }
        int rc = g->decided ? graph_cancel_running(g, NULL) : graph_decide(g, exc, NULL);
        Py_DECREF(exc);
        if (rc < 0 || graph_schedule_drain(g) < 0) {
            return NULL;
        }
    }
    g->started = 1;
    graph_set_finished(g);
    Py_RETURN_NONE;
}

/* A call has one waiter, as a coroutine has: an `await` of it once it has
 * started and until it has finished (a task awaiting the very call it
 * belongs to, which would wait for itself for ever) is a RuntimeError, as
 * Python's own "coroutine is being awaited already".  The waiter may have
 * started it by an await or by stepping it (asyncio takes an object with
 * send/throw/close for a coroutine).  Once finished, an await gets the
 * "cannot reuse" error from graph_am_send. */
static PyObject *
graph_await(PyObject *self)
{
    GraphObject *g = (GraphObject *)self;
    if (g->started && !g->finished) {
        PyErr_Format(PyExc_RuntimeError,
                     "this betterall.%s() call is being awaited already: a call has one "
                     "waiter, as a coroutine does (a task cannot await its own call)",
                     mode_names[g->mode]);
        return NULL;
    }
    return Py_NewRef(self);
}

/* iter(call): the call is its own iterator.  Not checked as graph_await
 * is: `yield from call.__await__()` (asyncio's wrapper of awaitables on
 * 3.11) asks for the iterator of what __await__ returned. */
static PyObject *
graph_iter(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *
graph_repr(PyObject *self)
{
    GraphObject *g = (GraphObject *)self;
    return PyUnicode_FromFormat("<betterall.%s() of %zd tasks>", mode_names[g->mode], g->n);
}

static int
graph_traverse(GraphObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_VISIT(self->nodes[i]);
    }
    Py_VISIT(self->names);
    Py_VISIT(self->tasks);
    Py_VISIT(self->bind_context);
    Py_VISIT(self->bind_dict);
    Py_VISIT(self->bind_result);
    Py_VISIT(self->loop);
    Py_VISIT(self->signal);
    Py_VISIT(self->abort_reason);
    Py_VISIT(self->error);
    Py_VISIT(self->end_value);
    Py_VISIT(self->caller_exc);
    Py_VISIT(self->done_fut);
    Py_VISIT(self->timer);
    Py_VISIT(self->report);
    Py_VISIT(self->cb_context);
    Py_VISIT(self->drain_cb);
    Py_VISIT(self->soon_cb);
    Py_VISIT(self->outer);
    Py_VISIT(self->caller);
    Py_VISIT(self->spare_ctx);
    return 0;
}

static int
graph_clear(GraphObject *self)
{
    self->ready_len = 0;
    self->soon_len = 0;
    self->current = NULL;
    if (self->nodes != NULL) {
        Py_ssize_t n = self->n;
        NodeObject **nodes = self->nodes;
        self->nodes = NULL;
        self->n = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            NodeObject *node = nodes[i];
            if (node->proxy != NULL) {
                /* A `self` that outlives the graph keeps its signal (made
                 * now if nobody asked for it yet). */
                ContextObject *ctx = (ContextObject *)node->proxy;
                if (ctx->signal == NULL) {
                    PyObject *exc = PyErr_Occurred() ? ba_fetch_exc() : NULL;
                    ctx->signal = graph_get_signal(self);
                    if (ctx->signal == NULL) {
                        PyErr_WriteUnraisable((PyObject *)self);
                    }
                    if (exc != NULL) {
                        ba_restore_exc(exc);
                    }
                }
            }
            /* Detach: a node that outlives its graph (kept by user code)
             * sees graph == NULL.  From now on nothing keeps the node in a
             * reference cycle with the graph, so let the collector see it
             * (it was left untracked while the graph ran, for speed). */
            node->graph = NULL;
            node_track(node);
            Py_DECREF(node);
        }
        PyMem_Free(nodes);
    }
    Py_CLEAR(self->names);
    Py_CLEAR(self->tasks);
    Py_CLEAR(self->bind_context);
    Py_CLEAR(self->bind_dict);
    Py_CLEAR(self->bind_result);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->signal);
    Py_CLEAR(self->abort_reason);
    Py_CLEAR(self->error);
    Py_CLEAR(self->end_value);
    Py_CLEAR(self->caller_exc);
    Py_CLEAR(self->done_fut);
    Py_CLEAR(self->timer);
    Py_CLEAR(self->report);
    Py_CLEAR(self->cb_context);
    Py_CLEAR(self->drain_cb);
    Py_CLEAR(self->soon_cb);
    Py_CLEAR(self->outer);
    Py_CLEAR(self->caller);
    Py_CLEAR(self->spare_ctx);
    return 0;
}

/* A call that was never awaited ran nothing: say so, as Python does for a
 * coroutine that is never awaited. */
static void
graph_finalize(PyObject *self)
{
    GraphObject *g = (GraphObject *)self;
    if (g->started || g->n == 0) {
        return;
    }
    PyObject *exc = ba_fetch_exc();
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "betterall.%s() was never awaited: its tasks never ran",
                         mode_names[g->mode]) < 0) {
        PyErr_WriteUnraisable(self);
    }
    if (exc != NULL) {
        ba_restore_exc(exc);
    }
}

static void
graph_dealloc(GraphObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected by the warning machinery */
    }
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)graph_clear(self);
    PyMem_Free(self->ready);
    self->ready = NULL;
    PyMem_Free(self->soon);
    self->soon = NULL;
    ba_live_dealloc(tp, LIVE_GRAPH);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef graph_methods[] = {
    {"send", (PyCFunction)graph_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))graph_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)graph_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef graph_members[] = {
    {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(GraphObject, weakreflist), Py_READONLY},
    {NULL},
};

static PyType_Slot graph_slots[] = {
    {Py_tp_doc, "A running betterall call: await it for the result."},
    {Py_tp_dealloc, graph_dealloc},
    {Py_tp_finalize, graph_finalize},
    {Py_tp_traverse, graph_traverse},
    {Py_tp_clear, graph_clear},
    {Py_tp_methods, graph_methods},
    {Py_tp_members, graph_members},
    {Py_tp_repr, graph_repr},
    {Py_tp_iter, graph_iter},
    {Py_tp_iternext, graph_iternext},
    {Py_am_await, graph_await},
    {Py_am_send, graph_am_send},
    {0, NULL},
};

static PyType_Spec graph_spec = {
    .name = "betterall._cengine.Graph",
    .basicsize = sizeof(GraphObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = graph_slots,
};

/* -- building a graph from the call's arguments ---------------------------- */

/* The calling rule (docs/guide.md, "How a task is called"), as betterall._prepare.takes_no_arguments
 * states it, for the two kinds of callables this fast path sees: a Python
 * function (or lambda), and a bound method of one (`implicit` = 1: self is
 * given).  1 if it can be called with no argument: every positional
 * parameter after the given ones has a default, and so has every
 * keyword-only one (*args and **kwargs need nothing).  -1 with an error.
 * Anything else (a class, a builtin, an object with __call__) gets the
 * context: 0.  functools.partial never reaches here (dict_is_plain). */
static int
function_takes_no_arguments(PyObject *func, int implicit)
{
    PyCodeObject *co = (PyCodeObject *)PyFunction_GET_CODE(func);
    PyObject *defaults = PyFunction_GET_DEFAULTS(func);
    Py_ssize_t ndefaults = defaults != NULL ? PyTuple_GET_SIZE(defaults) : 0;
    if (co->co_argcount - ndefaults > implicit) {
        return 0;
    }
    if (co->co_kwonlyargcount == 0) {
        return 1;
    }
    PyObject *kwdefaults = PyFunction_GET_KW_DEFAULTS(func);
    if (kwdefaults == NULL || !PyDict_Check(kwdefaults)) {
        return 0;
    }
    PyObject *names = PyCode_GetVarnames(co);
    if (names == NULL) {
        return -1;
    }
    int all_defaulted = 1; /* then 0 at the first one without, -1 on error */
    for (int i = co->co_argcount;
         all_defaulted == 1 && i < co->co_argcount + co->co_kwonlyargcount; i++) {
        all_defaulted = PyDict_Contains(kwdefaults, PyTuple_GET_ITEM(names, i));
    }
    Py_DECREF(names);
    return all_defaulted;
}

static int
takes_no_arguments(PyObject *fn)
{
    if (PyFunction_Check(fn)) {
        return function_takes_no_arguments(fn, 0);
    }
    if (PyMethod_Check(fn)) {
        PyObject *func = PyMethod_GET_FUNCTION(fn);
        if (PyFunction_Check(func)) {
            return function_takes_no_arguments(func, 1);
        }
    }
    return 0;
}

static int
graph_add_node(GraphObject *g, PyObject *name, PyObject *fn, int wants_ctx, int in_task)
{
    mod_state *st = g->mst;
    NodeObject *node = PyObject_GC_New(NodeObject, st->NodeType);
    if (node == NULL) {
        return -1;
    }
    memset((char *)node + sizeof(PyObject), 0, sizeof(NodeObject) - sizeof(PyObject));
    BA_LIVE_ADD(st, LIVE_NODE, 1);
    node->mst = st;
    node->graph = g; /* borrowed: see NodeObject */
    node->name = Py_NewRef(name);
    node->fn = Py_NewRef(fn);
    node->wants_ctx = wants_ctx;
    node->in_task = in_task;
    node->vars = PyContext_CopyCurrent();
    /* Not tracked by the collector while the graph runs: the graph owns
     * it and is tracked itself, so the node stays alive; skipping it saves
     * the collector a traversal per node.  graph_clear() tracks it. */
    g->nodes[g->n++] = node; /* owned by the graph from here on */
    g->remaining++;
    return node->vars == NULL ? -1 : 0;
}

/* The name -> node table, built on the first sibling lookup: graphs whose
 * tasks never look a sibling up never pay for it.  Borrowed, or NULL with
 * an error set. */
static PyObject *
graph_names(GraphObject *g)
{
    if (g->names == NULL) {
        /* The private copy of the caller's dict has every name already:
         * its values (the task functions, which the nodes hold too) become
         * the nodes until the results replace them (graph_result), which
         * costs less than filling a new table.  Otherwise a new table. */
        PyObject *names = (g->tasks != NULL && PyDict_CheckExact(g->tasks))
                              ? Py_NewRef(g->tasks)
                              : PyDict_New();
        if (names == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < g->n; i++) {
            if (PyDict_SetItem(names, g->nodes[i]->name, (PyObject *)g->nodes[i]) < 0) {
                Py_DECREF(names);
                return NULL;
            }
        }
        /* Private to the graph, which keeps the nodes alive and is
         * traversed itself: the collector need not walk a thousand
         * entries at each collection while the graph runs (it is tracked
         * again with the nodes, see graph_track_nodes). */
        untrack_while_running(g, names);
        g->names = names;
    }
    return g->names;
}

/* Fast check of an exact dict; 1 if every entry is plainly valid, 0 if
 * something needs the slow path (which raises the exact error). */
static int
dict_is_plain(mod_state *st, PyObject *tasks)
{
    Py_ssize_t pos = 0;
    PyObject *name, *fn;
    while (PyDict_Next(tasks, &pos, &name, &fn)) {
        if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) == 0 ||
            PyUnicode_READ_CHAR(name, 0) == '_' || PyCoro_CheckExact(fn) ||
            !PyCallable_Check(fn) || Py_IS_TYPE(fn, (PyTypeObject *)st->InTask) ||
            Py_IS_TYPE(fn, (PyTypeObject *)st->partial_type)) {
            return 0;
        }
    }
    return 1;
}

/* The checks of betterall._prepare.check_bind, without calling it: the
 * class form passes _bind= on every run. */
static int
bind_is_valid(mod_state *st, PyObject *bind)
{
    if (!PyTuple_CheckExact(bind) || PyTuple_GET_SIZE(bind) != 3) {
        return 0;
    }
    PyObject *ctx = PyTuple_GET_ITEM(bind, 0);
    PyObject *attrs = PyTuple_GET_ITEM(bind, 1);
    PyObject *result = PyTuple_GET_ITEM(bind, 2);
    return PyType_Check(ctx) && PyType_IsSubtype((PyTypeObject *)ctx, st->ContextType) &&
           PyDict_CheckExact(attrs) &&
           (result == Py_None ||
            (PyType_Check(result) && PyType_IsSubtype((PyTypeObject *)result, &PyDict_Type)));
}

static PyObject *
graph_new(mod_state *st, int mode, PyObject *tasks, PyObject *debug, PyObject *timeout,
          PyObject *bind)
{
    PyObject *specs = NULL;
    Py_ssize_t n;
    if (PyDict_CheckExact(tasks) && dict_is_plain(st, tasks)) {
        n = PyDict_GET_SIZE(tasks);
    }
    else {
        /* Anything unusual: the shared Python checks raise the exact error
         * (closing coroutine objects), or return the specs. */
        specs = PyObject_CallOneArg(st->prepare, tasks);
        if (specs == NULL) {
            return NULL;
        }
        n = PyList_GET_SIZE(specs);
    }

    double seconds = 0.0;
    int has_timeout = 0;
    if (timeout != NULL && timeout != Py_None) {
        PyObject *t = PyObject_CallOneArg(st->check_timeout, timeout);
        if (t == NULL) {
            Py_XDECREF(specs);
            return NULL;
        }
        if (t != Py_None) {
            seconds = PyFloat_AsDouble(t);
            has_timeout = 1;
        }
        Py_DECREF(t);
    }
    PyObject *report = NULL;
    if (debug == NULL || debug == Py_False || debug == Py_None) {
        const char *env = getenv("BETTERALL_DEBUG");
        if (env != NULL && env[0] != '\0') {
            report = PyObject_CallOneArg(st->check_debug, Py_False);
        }
    }
    else {
        report = PyObject_CallOneArg(st->check_debug, debug);
    }
    if (report == NULL && PyErr_Occurred()) {
        Py_XDECREF(specs);
        return NULL;
    }
    if (report == Py_False) {
        Py_CLEAR(report);
    }
    if (bind == Py_None) {
        bind = NULL;
    }
    if (bind != NULL && !bind_is_valid(st, bind)) {
        /* The Python check raises the error (a cold path). */
        PyObject *checked = PyObject_CallFunctionObjArgs(st->check_bind, bind,
                                                         st->ContextType, NULL);
        Py_XDECREF(checked);
        Py_XDECREF(specs);
        Py_XDECREF(report);
        if (checked != NULL) {
            PyErr_SetString(PyExc_SystemError, "_bind= failed the C check only");
        }
        return NULL;
    }

    GraphObject *g = PyObject_GC_New(GraphObject, st->GraphType);
    if (g == NULL) {
        Py_XDECREF(specs);
        Py_XDECREF(report);
        return NULL;
    }
    memset((char *)g + sizeof(PyObject), 0, sizeof(GraphObject) - sizeof(PyObject));
    BA_LIVE_ADD(st, LIVE_GRAPH, 1);
    g->mst = st;
    g->mode = mode;
    g->report = report;
    g->has_timeout = has_timeout;
    g->timeout = seconds;
    if (bind != NULL) {
        g->bind_context = (PyTypeObject *)Py_NewRef(PyTuple_GET_ITEM(bind, 0));
        g->bind_dict = Py_NewRef(PyTuple_GET_ITEM(bind, 1));
        PyObject *result = PyTuple_GET_ITEM(bind, 2);
        g->bind_result = result == Py_None ? NULL : Py_NewRef(result);
    }
    g->nodes = PyMem_Malloc((n ? n : 1) * sizeof(NodeObject *));
    PyObject_GC_Track(g);
    if (g->nodes == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    if (specs == NULL) {
        if (mode != MODE_FLOW) {
            /* Kept (only) to build the result from; see graph_result(). */
            g->tasks = g->bind_result ? PyObject_CallOneArg(g->bind_result, tasks)
                                      : PyDict_Copy(tasks);
            if (g->tasks == NULL) {
                goto error;
            }
            if (PyDict_CheckExact(g->tasks)) {
                /* Private until it becomes the result, and its values (the
                 * task functions) are held by the nodes too: no need for
                 * the collector to walk it at each collection.  Storing
                 * the results tracks it again when one of them is a
                 * container, as for any dict (graph_result); if it is
                 * not handed out, it is tracked with the nodes. */
                untrack_while_running(g, g->tasks);
            }
        }
        Py_ssize_t pos = 0;
        PyObject *name, *fn;
        while (PyDict_Next(tasks, &pos, &name, &fn)) {
            /* The check above ran no Python code, and neither does
             * takes_no_arguments (bar a hostile __kwdefaults__ key), so
             * the dict stays as it is while we iterate.  The class form's
             * tasks are methods: they always get self. */
            int none = bind != NULL ? 0 : takes_no_arguments(fn);
            if (none < 0 || graph_add_node(g, name, fn, !none, 0) < 0) {
                goto error;
            }
        }
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *spec = PyList_GET_ITEM(specs, i);
            int wants = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 2));
            int in_task = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 3));
            if (wants < 0 || in_task < 0 ||
                graph_add_node(g, PyTuple_GET_ITEM(spec, 0), PyTuple_GET_ITEM(spec, 1),
                               wants || bind != NULL, in_task) < 0) {
                goto error;
            }
        }
    }
    Py_XDECREF(specs);
    return (PyObject *)g;

error:
    Py_XDECREF(specs);
    Py_DECREF(g);
    return NULL;
}

/* all/all_settled/flow(tasks, *, debug=False, timeout=None) */
static PyObject *
graph_entry(PyObject *module, int mode, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    mod_state *st = PyModule_GetState(module);
    PyObject *tasks = nargs > 0 ? args[0] : NULL;
    PyObject *debug = NULL, *timeout = NULL, *bind = NULL;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes 1 positional argument but %zd were given",
                     mode_names[mode], nargs);
        return NULL;
    }
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *kw = PyTuple_GET_ITEM(kwnames, i);
            PyObject *value = args[nargs + i];
            if (PyUnicode_CompareWithASCIIString(kw, "debug") == 0) {
                debug = value;
            }
            else if (PyUnicode_CompareWithASCIIString(kw, "timeout") == 0) {
                timeout = value;
            }
            else if (PyUnicode_CompareWithASCIIString(kw, "_bind") == 0) {
                bind = value;
            }
            else if (PyUnicode_CompareWithASCIIString(kw, "tasks") == 0 && tasks == NULL) {
                tasks = value;
            }
            else {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R",
                             mode_names[mode], kw);
                return NULL;
            }
        }
    }
    if (tasks == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument: 'tasks'",
                     mode_names[mode]);
        return NULL;
    }
    return graph_new(st, mode, tasks, debug, timeout, bind);
}

#endif /* BETTERALL_GRAPH_H */
